package host_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// digestCheckInterval is short: the tests wait for the leader's periodic
// checks, not for a check they ask for.
const digestCheckInterval = 300 * time.Millisecond

// metricValue returns the value of the named counter or gauge of n.
func metricValue(t testing.TB, n *host.Node, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range n.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// applyText applies a text command through the cluster's leader, again
// after an error (a loaded machine's leadership changes), and returns its
// result. Retries after an unknown outcome carry the same idempotency key
// (applyOnce), so that a "count" counts once.
func applyText(t testing.TB, c *cluster.Cluster, name, text string) string {
	t.Helper()
	var out string
	cluster.Poll(t, 60*time.Second, func() bool {
		var err error
		out, err = applyOnce(t, c.Leader().Node, name, text)
		if err != nil {
			t.Logf("%s %q: %v (retrying)", name, text, err)
			return false
		}
		return true
	}, "%s %q was not applied", name, text)
	return out
}

func applyOnce(t testing.TB, n *host.Node, name, text string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The idempotency key makes a retry after an unknown outcome apply
	// the command at most once.
	key := fmt.Sprintf("%s-%s-%d", name, strings.ReplaceAll(text, " ", "-"), time.Now().UnixNano())
	var r abi.Result
	var err error
	for range 5 {
		if r, err = n.ApplyOnce(ctx, name, key, []byte(text)); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	if !r.OK() {
		t.Fatalf("%s %q: %v", name, text, r.Err())
	}
	return string(r.Data), nil
}

// deployHostile deploys the hostile plugin through the leader of the
// moment, again after an error (a deploy of the same module is idempotent).
func deployHostile(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	wasm := wasmbuild.Build(t, "./plugin/testdata/hostile")
	cluster.Poll(t, 3*time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := c.Leader().Node.DeployPlugin(ctx, "hostile", wasm)
		if err != nil {
			t.Logf("deploying hostile: %v (retrying)", err)
		}
		return err == nil
	}, "hostile was not deployed")
}

// setKV sets k through the cluster's leader, again after an error.
func setKV(t testing.TB, c *cluster.Cluster, k, v string) {
	t.Helper()
	cluster.Poll(t, 60*time.Second, func() bool {
		err := set(t, c.Leader().Node, k, v)
		if err != nil {
			t.Logf("SET %s: %v (retrying)", k, err)
		}
		return err == nil
	}, "SET %s was not applied", k)
}

// checkedAll waits until the leader has run a digest check, at an index
// at or past after (the check entry may be the entry at after), that
// compared its digests with every other member. The leader is the one of
// each poll: a loaded machine's leadership can move meanwhile, and a new
// leader compares with the others, not with itself (CI: n2 took over and
// compared with n1 and n3, while the test waited for n2 and n3).
func checkedAll(t testing.TB, c *cluster.Cluster, after uint64) host.DigestCheck {
	t.Helper()
	var got host.DigestCheck
	cluster.Poll(t, 60*time.Second, func() bool {
		l := c.Leader()
		dc := l.Node.LastDigestCheck()
		if dc == nil || dc.Index < after {
			return false
		}
		for _, m := range c.Members {
			if m != l && !slices.Contains(dc.Compared, m.ID) {
				return false
			}
		}
		got = *dc
		return true
	}, "no digest check at or past index %d compared with every member but the leader (last: %+v)", after, lazyCheck{c})
	return got
}

// lazyCheck prints the leader's last digest check when formatted.
type lazyCheck struct{ c *cluster.Cluster }

func (l lazyCheck) String() string { return fmt.Sprintf("%+v", l.c.Leader().Node.LastDigestCheck()) }

// TestDigestCheckDetectsDivergence: the hostile plugin's "count K" writes a
// counter kept in guest memory. Every node runs the same instance history,
// so the digest checks agree, until a follower restarts from a snapshot: its
// new instance counts from 0 while the others go on, and their states
// differ. The leader's periodic check finds it: both the leader and the
// follower name the plugin (Divergences, the status summary behind
// /healthz), count it (raftkv_state_divergence), and log a WARN with both
// digests and both node IDs; the node that did not restart agrees with the
// leader, and kv's state is not reported.
func TestDigestCheckDetectsDivergence(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		cfg.DigestCheckInterval = digestCheckInterval
	}})
	deployHostile(t, c)
	setKV(t, c, "k", "v")
	for i := 1; i <= 3; i++ {
		if got := applyText(t, c, "hostile", "count c"); got != strconv.Itoa(i) {
			t.Fatalf("count %d: %q", i, got)
		}
	}
	fs := c.Followers()
	checkedAll(t, c, c.Leader().Node.AppliedIndex())
	for _, m := range c.Members {
		if d := m.Node.Divergences(); len(d) != 0 {
			t.Fatalf("%s: divergence before any restart: %+v", m.ID, d)
		}
	}

	// A follower restarts from its own snapshot: its instance of hostile
	// starts afresh.
	f := fs[0]
	if err := host.SnapshotNow(f.Node); err != nil {
		t.Fatal(err)
	}
	c.Restart(f)
	c.WaitConverged(3)
	if got := applyText(t, c, "hostile", "count c"); c.Leader() != f && got != "4" {
		t.Fatalf("count on the leader after the restart: %q, want 4", got)
	}

	// The idempotency table (.sessions) may differ too: it keeps each keyed
	// command's result, and the counts differ.
	names := func(ds []host.Divergence) string {
		var out []string
		for _, d := range ds {
			if d.Digest == d.PeerDigest {
				return fmt.Sprintf("%+v", ds)
			}
			out = append(out, d.Plugin)
		}
		slices.Sort(out)
		return strings.Join(slices.Compact(out), ",")
	}
	var l *cluster.Member
	cluster.Poll(t, 60*time.Second, func() bool {
		l = c.Leader()
		got := names(f.Node.Divergences())
		return len(l.Node.Divergences()) > 0 && (got == "hostile" || got == ".sessions,hostile")
	}, "no divergence detected on the leader and on %s (last check %v)", f.ID, lazyCheck{c})
	t.Logf("leader %s: %s", l.ID, l.Node.Stats().DivergenceSummary)
	t.Logf("restarted %s: %s", f.ID, f.Node.Stats().DivergenceSummary)
	// Every divergence reported is between the restarted node and another:
	// the leader's and the restarted node's; the third node agrees with
	// the leader (or, if the restarted node leads, reports it).
	for _, m := range c.Members {
		for _, d := range m.Node.Divergences() {
			if m != f && d.Peer != f.ID || d.Peer == m.ID {
				t.Errorf("%s reports %+v: not between %s and another node", m.ID, d, f.ID)
			}
		}
		if got := names(m.Node.Divergences()); m != f && m != l && l != f && got != "" {
			t.Errorf("%s, which did not restart, reports %s", m.ID, got)
		}
	}
	for _, m := range []*cluster.Member{l, f} {
		st := m.Node.Stats()
		if !strings.Contains(st.DivergenceSummary, `plugin "hostile" diverges`) {
			t.Errorf("%s: status summary %q does not name the plugin", m.ID, st.DivergenceSummary)
		}
		if v := metricValue(t, m.Node, "raftkv_state_divergence"); v < 1 {
			t.Errorf("%s: raftkv_state_divergence = %v, want 1 or more", m.ID, v)
		}
		if v := metricValue(t, m.Node, "raftkv_state_divergences_total"); v < 1 {
			t.Errorf("%s: raftkv_state_divergences_total = %v", m.ID, v)
		}
		if s := m.Node.Status(false); len(s.Divergence) == 0 || s.LastDigestCheck == nil {
			t.Errorf("%s: status divergence %+v, last check %+v", m.ID, s.Divergence, s.LastDigestCheck)
		}
	}
	ds := l.Node.Divergences()
	d := ds[len(ds)-1] // hostile sorts after .sessions
	if !c.Logged("STATE DIVERGENCE", "node="+l.ID, "plugin=hostile", "peer="+d.Peer, "digest="+d.Digest, "peer_digest="+d.PeerDigest) {
		t.Error("the leader logged no WARN with both digests and both node IDs")
	}
}

// TestDigestCheckNoFalseAlarm: deterministic plugins (kv, and hostile's
// "set") never raise a divergence, through a follower's restart from its own
// snapshot and a lagging follower's InstallSnapshot, while the checks keep
// comparing every member.
func TestDigestCheckNoFalseAlarm(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		cfg.DigestCheckInterval = digestCheckInterval
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 50, 10, 50*time.Millisecond
		cfg.WALSegmentBytes = 16 << 10
	}})
	deployHostile(t, c)
	for i := range 20 {
		setKV(t, c, fmt.Sprintf("a-%02d", i), strconv.Itoa(i))
		applyText(t, c, "hostile", fmt.Sprintf("set h%02d %d", i, i))
	}
	fs := c.Followers()
	checkedAll(t, c, c.Leader().Node.AppliedIndex())

	// fs[0] restarts from its own snapshot; fs[1] is down while the log
	// is compacted, and catches up by InstallSnapshot.
	restarted, lagging := fs[0], fs[1]
	if err := host.SnapshotNow(restarted.Node); err != nil {
		t.Fatal(err)
	}
	c.Restart(restarted)
	c.Stop(lagging)
	for i := range 300 {
		setKV(t, c, fmt.Sprintf("b-%03d", i), strconv.Itoa(i))
		if i%30 == 0 {
			applyText(t, c, "hostile", fmt.Sprintf("set g%03d %d", i, i))
		}
	}
	cluster.Poll(t, 20*time.Second, func() bool {
		idx, _ := strconv.Atoi(c.Leader().Node.Stats().Raft["last_snapshot_index"])
		return idx > 200
	}, "leader did not compact its log")
	c.Restart(lagging)
	c.WaitConverged(3)
	assertInstalledSnapshot(t, c, lagging)
	setKV(t, c, "after", "1")
	applyText(t, c, "hostile", "set after 1")
	dc := checkedAll(t, c, c.Leader().Node.AppliedIndex())
	t.Logf("check at index %d compared %v", dc.Index, dc.Compared)
	for _, m := range c.Members {
		if d := m.Node.Divergences(); len(d) != 0 {
			t.Errorf("%s: false alarm: %+v", m.ID, d)
		}
		if v := metricValue(t, m.Node, "raftkv_state_divergences_total"); v != 0 {
			t.Errorf("%s: raftkv_state_divergences_total = %v", m.ID, v)
		}
	}
	if v := metricValue(t, c.Leader().Node, "raftkv_digest_comparisons_total"); v < 2 {
		t.Errorf("leader compared %v times", v)
	}
	if c.Logged("STATE DIVERGENCE") {
		t.Error("a node logged a divergence")
	}
}

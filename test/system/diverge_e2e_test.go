package system_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestE2EDivergenceDetected: three processes on 127.0.21.x check their
// digests every 500 ms. The hostile plugin's "count K" keeps a counter in
// guest memory and writes it to the state: the checks agree (every node
// ran the same instance history, /healthz 200 everywhere) until a follower
// restarts from its snapshot, whose instance counts from 0 again. After
// the next count, the leader and that follower report the divergence
// naming the plugin: /healthz 503 degraded, raftkv_state_divergence,
// `raftkv status` (DIVERGED), `status --cluster` and `health --cluster`
// (diverged, exit 1), and a WARN with both digests and both node IDs in the
// leader's log; the third node stays healthy.
func TestE2EDivergenceDetected(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of processes")
	}
	bin := buildBinary(t)
	wasm := hostileFile(t)
	var c e2eCluster
	for i, id := range []string{"n1", "n2", "n3"} {
		join := ""
		if i > 0 {
			join = c[0].url()
		}
		p := newProc(t, bin, id, fmt.Sprintf("127.0.21.%d", i+1), join)
		p.args = append(p.args, "--heartbeat-timeout", "1500ms", "--election-timeout", "1500ms", "--leader-lease-timeout", "1s",
			"--digest-check-interval", "500ms", "--snapshot-threshold", "16", "--snapshot-interval", "200ms")
		c = append(c, p)
	}
	for _, p := range c {
		p.start()
	}
	c.waitReady(t, 3)
	l := c.leader(t)
	mustCLI(t, "plugin", "deploy", "hostile", wasm, "--addr", l.url())
	count := func() string {
		r := mustHTTP(t, 200, "POST", c.leader(t).url()+"/v1/plugins/hostile/commands", []byte(`"count c"`))
		return strings.TrimSpace(r.body)
	}
	for range 20 {
		count()
	}
	l = c.leader(t)
	fs := c.followers(t)
	f, other := fs[0], fs[1]
	// The checks compare both followers and agree.
	poll(t, 60*time.Second, "a digest check that compared both followers", func() error {
		var st struct {
			LastDigestCheck *struct {
				Index    uint64   `json:"index"`
				Compared []string `json:"compared"`
			} `json:"last_digest_check"`
		}
		r := mustHTTP(t, 200, "GET", l.url()+"/v1/status", nil)
		if err := json.Unmarshal([]byte(r.body), &st); err != nil {
			return err
		}
		if st.LastDigestCheck == nil || len(st.LastDigestCheck.Compared) != 2 {
			return fmt.Errorf("last check %s", r.body)
		}
		return nil
	})
	for _, p := range c {
		mustHTTP(t, 200, "GET", p.url()+"/healthz", nil)
	}
	// Its snapshot must hold the plugin's state after the counts so far: a
	// snapshot that precedes them (one past the deploy is not enough: the
	// digest checks' entries grow the log too) would replay every count on
	// a fresh instance, the same history as the others', and nothing would
	// diverge (this test failed that way 2 runs in 3 on a faster machine).
	var st struct {
		Applied uint64 `json:"applied_index"`
	}
	if err := json.Unmarshal([]byte(mustHTTP(t, 200, "GET", l.url()+"/v1/status", nil).body), &st); err != nil || st.Applied == 0 {
		t.Fatalf("the leader's applied index: %v %+v", err, st)
	}
	poll(t, 60*time.Second, f.id+" took a snapshot past the counts", func() error {
		if v := metric(t, f, "raftkv_raft_last_snapshot_index"); v < float64(st.Applied) {
			count() // the log grows: a snapshot every 16 entries
			return fmt.Errorf("last snapshot index %v, the counts up to %d", v, st.Applied)
		}
		return nil
	})

	// The follower restarts from its snapshot: a fresh instance.
	if err := f.terminate(); err != nil {
		t.Fatal(err)
	}
	f.start()
	c.waitReady(t, 3)
	t.Logf("count after %s restarted: %s", f.id, count())

	l = c.leader(t)
	poll(t, 60*time.Second, "the leader's /healthz degraded", func() error {
		r, err := doHTTP("GET", l.url()+"/healthz", nil)
		if err != nil {
			return err
		}
		if r.status != 503 || !strings.Contains(r.body, `"degraded"`) || !strings.Contains(r.body, `plugin \"hostile\" diverges`) {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
	if l == f {
		t.Fatalf("the restarted node %s leads", f.id)
	}
	r := mustHTTP(t, 503, "GET", f.url()+"/healthz", nil)
	if !strings.Contains(r.body, "hostile") || !strings.Contains(r.body, l.id) {
		t.Fatalf("%s /healthz: %s", f.id, r.body)
	}
	t.Logf("%s /healthz: %s", f.id, strings.TrimSpace(r.body))
	mustHTTP(t, 200, "GET", other.url()+"/healthz", nil)
	if v := metric(t, l, "raftkv_state_divergence"); v < 1 {
		t.Errorf("raftkv_state_divergence on %s: %v", l.id, v)
	}
	out := mustCLI(t, "status", "--addr", l.url())
	if !strings.Contains(out, "DIVERGED:      plugin hostile") || !strings.Contains(out, "on "+f.id) {
		t.Errorf("raftkv status:\n%s", out)
	}
	t.Logf("raftkv status:\n%s", out)
	out = mustCLI(t, "status", "--cluster", "--addr", other.url())
	if !strings.Contains(out, "diverged: ") || !strings.Contains(out, "hostile≠"+f.id) {
		t.Errorf("raftkv status --cluster:\n%s", out)
	}
	t.Logf("raftkv status --cluster:\n%s", out)
	if res := cli(t, "health", "--cluster", "--addr", other.url()); res.code == 0 || !strings.Contains(res.stdout, "diverged") {
		t.Errorf("raftkv health --cluster: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// Every start's log: the leader may have been restarted never, but its
	// log file is per start.
	logged := false
	for i := 1; i <= l.starts; i++ {
		for _, line := range strings.Split(l.log(i), "\n") {
			if strings.Contains(line, "STATE DIVERGENCE") && strings.Contains(line, "level=WARN") && strings.Contains(line, "node="+l.id) &&
				strings.Contains(line, "peer="+f.id) && strings.Contains(line, "plugin=hostile") && strings.Contains(line, " digest=") && strings.Contains(line, "peer_digest=") {
				logged = true
				t.Logf("leader's log: %s", line)
			}
		}
	}
	if !logged {
		t.Error("the leader logged no WARN naming the plugin with both digests and both node IDs")
	}
}

package host_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/internal/cluster"
)

// lead makes m the cluster's ready leader.
func lead(t *testing.T, c *cluster.Cluster, m *cluster.Member) {
	t.Helper()
	cluster.Poll(t, time.Minute, func() bool {
		l := c.Leader()
		if l == m {
			return true
		}
		if err := host.TransferLeadership(l.Node, m.ID, m.Proxy.Addr()); err != nil {
			t.Logf("transferring leadership from %s to %s: %v", l.ID, m.ID, err)
		}
		return false
	}, "%s did not become the leader", m.ID)
}

// deploySlow deploys the slow test plugin trusted (unmetered): its spins run
// until they end or reach the wall-clock limit, the stand-in for an
// unmetered host bug.
func deploySlow(t *testing.T, n *host.Node, name string, wasm []byte) host.PluginInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	info, err := n.DeployPluginWith(ctx, name, wasm, host.DeployOptions{Trusted: true, Force: true})
	// A leader may step down under a loaded machine's big deploy: deploying
	// the same module again is harmless (it answers the active one).
	for err != nil && ctx.Err() == nil && (errors.Is(err, host.ErrUnknownOutcome) || errors.Is(err, host.ErrNotLeader) || errors.Is(err, host.ErrNoLeader)) {
		t.Logf("deploying %s through %s: %v; again", name, n.ID(), err)
		time.Sleep(time.Second)
		info, err = n.DeployPluginWith(ctx, name, wasm, host.DeployOptions{Trusted: true, Force: true})
	}
	if err != nil {
		t.Fatalf("deploying %s: %v", name, err)
	}
	return info
}

func applyOK(t *testing.T, n *host.Node, name, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := n.Apply(ctx, name, []byte(cmd))
	if err != nil || !res.OK() {
		t.Fatalf("%s %q through %s: %v %v", name, cmd, n.ID(), err, res.Err())
	}
}

func stale(t *testing.T, n *host.Node, name, q string) string {
	t.Helper()
	res, err := n.Query(context.Background(), name, []byte(q), host.Stale)
	if err != nil || !res.OK() {
		t.Fatalf("stale query %q of %s on %s: %v %v", q, name, n.ID(), err, res.Err())
	}
	return string(res.Data)
}

// failedAt waits for m to fail-stop and returns the index of the entry it
// failed at, from Stats().Failure, which must mention what.
func failedAt(t *testing.T, m *cluster.Member, what string) uint64 {
	t.Helper()
	cluster.Poll(t, time.Minute, func() bool { return m.Node.Stats().Failure != "" }, "%s did not fail-stop (%s)", m.ID, what)
	failure := m.Node.Stats().Failure
	var at uint64
	if _, err := fmt.Sscanf(failure, "applying log index %d", &at); err != nil || !strings.Contains(failure, what) || !strings.Contains(failure, "wall-clock") {
		t.Fatalf("%s: Stats().Failure = %q, want the failed index, %q and the time limit", m.ID, failure, what)
	}
	if got := m.Node.AppliedIndex(); got != at-1 {
		t.Fatalf("%s failed at index %d but reports index %d applied", m.ID, at, got)
	}
	return at
}

func snapshotIndex(n *host.Node) uint64 {
	idx, _ := strconv.ParseUint(n.Stats().Raft["last_snapshot_index"], 10, 64)
	return idx
}

func httpGet(t *testing.T, h *httpapi.API, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", path, nil)
	req.Host = "127.0.0.1" // a Host the token-less node's browser guard allows
	h.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestFailStopLeader: in a 3-node cluster the leader n1, whose plugin call
// limit is short, fails to apply a command that the others apply in about a
// second. It stops applying at that entry and says so (Stats().Failure,
// /healthz, raftkv_fail_stopped); it refuses leader and linearizable reads
// and backups, still answers stale reads from the state before the entry,
// takes no snapshot past it, and hands leadership over, so the cluster keeps
// writing. Restarted with a longer limit, it applies the entry it failed at
// and ends with the others' state.
func TestFailStopLeader(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		cluster.PatientRaft(cfg)
		cfg.PluginCallTimeout = host.LongCallTimeout
		if cfg.NodeID == "n1" {
			cfg.PluginCallTimeout = host.ShortCallTimeout
			// Raft would snapshot right after the failure if it could.
			cfg.SnapshotThreshold, cfg.SnapshotInterval = 4, 50*time.Millisecond
		}
	}})
	n1 := c.Member("n1")
	lead(t, c, n1)
	deploySlow(t, n1.Node, "slow", host.SlowWasm(t, "1"))
	applyOK(t, n1.Node, "slow", "set a 1")
	mustSet(t, n1.Node, "before", "1")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := n1.Node.Apply(ctx, "slow", []byte("spin "+host.SpinIters+" k")); !errors.Is(err, host.ErrStopped) {
		t.Fatalf("a command past the leader's time limit: %v, want ErrStopped", err)
	}
	at := failedAt(t, n1, "applying log index")

	api := httpapi.New(n1.Node, httpapi.DefaultConfig())
	if code, body := httpGet(t, api, "/healthz"); code != 503 || !strings.Contains(body, "stopped") {
		t.Errorf("/healthz of a fail-stopped node: %d %s", code, body)
	}
	if _, body := httpGet(t, api, "/metrics"); !strings.Contains(body, "\nraftkv_fail_stopped 1\n") {
		t.Errorf("/metrics of a fail-stopped node lacks raftkv_fail_stopped 1")
	}
	for _, level := range []host.Consistency{host.Leader, host.Linearizable} {
		if _, err := host.QueryLocal(ctx, n1.Node, "slow", []byte("a"), level); !errors.Is(err, host.ErrStopped) {
			t.Errorf("%s read served by the fail-stopped node: %v, want ErrStopped", level, err)
		}
	}
	if got := stale(t, n1.Node, "slow", "a"); got != "1" {
		t.Errorf("stale read of a on the fail-stopped node: %q", got)
	}
	if got := stale(t, n1.Node, "slow", "k"); got != "" {
		t.Errorf("the fail-stopped node shows the failed command's write: k = %q", got)
	}
	if _, err := n1.Node.Backup(ctx, io.Discard); !errors.Is(err, host.ErrStopped) {
		t.Errorf("backup of a fail-stopped node: %v, want ErrStopped", err)
	}

	l := c.Leader() // a ready leader: never the fail-stopped n1
	mustSet(t, l.Node, "after", "1")
	if got := stale(t, l.Node, "slow", "k"); got == "" {
		t.Fatalf("%s did not apply the command n1 failed at", l.ID)
	}
	if idx := snapshotIndex(n1.Node); idx >= at {
		t.Fatalf("n1 took a snapshot at index %d, past the entry %d it failed at", idx, at)
	}

	n1.Reconfigure(func(cfg *host.Config) { cfg.PluginCallTimeout = host.LongCallTimeout })
	c.Restart(n1)
	c.WaitConverged(3)
	if f := n1.Node.Stats().Failure; f != "" {
		t.Fatalf("n1 restarted with a longer limit: %s", f)
	}
	digestsAgree(t, c, "slow")
	digestsAgree(t, c, "kv")
	if got, want := stale(t, n1.Node, "slow", "k"), stale(t, l.Node, "slow", "k"); got != want {
		t.Fatalf("k on the restarted n1 = %q, want %q", got, want)
	}
}

// TestDeployTimeLimitFailStops: n3's plugin call limit is short. An upgrade
// whose migration, then a module whose raftkv_info, takes about a second is
// activated by the others and fail-stops n3 at the deploy entry, instead of
// n3 refusing what the others accepted. Restarted with a longer limit, n3
// activates it and ends with the others' state.
func TestDeployTimeLimitFailStops(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		cluster.PatientRaft(cfg)
		cfg.PluginCallTimeout = host.LongCallTimeout
		if cfg.NodeID == "n3" {
			cfg.PluginCallTimeout = host.ShortCallTimeout
			cfg.SnapshotThreshold, cfg.SnapshotInterval = 4, 50*time.Millisecond
		}
	}})
	n1, n3 := c.Member("n1"), c.Member("n3")
	lead(t, c, n1) // validates deploys with the long limit
	restart := func(timeout time.Duration) {
		t.Helper()
		n3.Reconfigure(func(cfg *host.Config) { cfg.PluginCallTimeout = timeout })
		c.Restart(n3)
		// n3 replays the upgrade's migration, a spin of SpinIters: about
		// 4 s bare, but wazero's termination checks (a call into Go at
		// each loop header) and the race detector's cost of them made
		// it outlast 30 s in CI.
		c.WaitConvergedWithin(3, host.LongCallTimeout)
		if f := n3.Node.Stats().Failure; f != "" {
			t.Fatalf("n3 restarted: %s", f)
		}
	}

	v1 := deploySlow(t, n1.Node, "slow", host.SlowWasm(t, "1"))
	applyOK(t, n1.Node, "slow", "init")
	v2 := deploySlow(t, n1.Node, "slow", host.SlowWasm(t, "2", "-X main.migrateSpin="+host.SpinIters))
	if at := failedAt(t, n3, "migrating plugin"); at != v2.ActiveSince {
		t.Fatalf("n3 failed at index %d, want the upgrade's %d", at, v2.ActiveSince)
	}
	if h := pluginHash(n3.Node, "slow"); h != v1.Hash {
		t.Fatalf("the fail-stopped n3 runs %s, want v1 %s", h, v1.Hash)
	}
	restart(host.LongCallTimeout)
	if h := pluginHash(n3.Node, "slow"); h != v2.Hash {
		t.Fatalf("n3 runs %s after catching up, want v2 %s", h, v2.Hash)
	}
	digestsAgree(t, c, "slow")

	// Back to the short limit, from a snapshot past the upgrade (replaying
	// it would fail-stop n3 again).
	for i := range 5 {
		mustSet(t, n1.Node, fmt.Sprintf("k%d", i), "v")
	}
	cluster.Poll(t, 30*time.Second, func() bool { return snapshotIndex(n3.Node) >= v2.ActiveSince }, "n3 took no snapshot past the upgrade")
	restart(host.ShortCallTimeout)
	info := deploySlow(t, n1.Node, "info", host.SlowWasm(t, "3", "-X main.infoSpin="+host.SpinIters))
	if at := failedAt(t, n3, `deploying plugin "info"`); at != info.ActiveSince {
		t.Fatalf("n3 failed at index %d, want the deploy's %d", at, info.ActiveSince)
	}
	if h := pluginHash(n3.Node, "info"); h != "" {
		t.Fatalf("the fail-stopped n3 runs %s", h)
	}
	restart(host.LongCallTimeout)
	if h := pluginHash(n3.Node, "info"); h != info.Hash {
		t.Fatalf("n3 runs %q after catching up, want %s", h, info.Hash)
	}
	digestsAgree(t, c, "info")
	digestsAgree(t, c, "slow")
}

// tinyModule returns a minimal valid plugin (no imports; its apply and
// query report nothing) with a custom section named name, so that modules
// of different names differ.
func tinyModule(name string) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, body ...byte) {
		b = append(b, id, byte(len(body))) // every body is shorter than 128 bytes
		b = append(b, body...)
	}
	section(1, 3, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 2, 0x7f, 0x7f, 0) // () -> (), (i32) -> i32, (i32, i32) -> ()
	section(3, 4, 0, 1, 2, 2)                                                 // marker, alloc, apply, query
	section(5, 1, 0, 1)                                                       // one memory of 1 page
	var exports []byte
	for i, e := range []string{"raftkv_abi_v1", "raftkv_alloc", "raftkv_apply", "raftkv_query", "memory"} {
		kind, index := byte(0), byte(i)
		if e == "memory" {
			kind, index = 2, 0
		}
		exports = append(append(append(exports, byte(len(e))), e...), kind, index)
	}
	section(7, append([]byte{5}, exports...)...)
	section(10, 4, 2, 0, 0x0b, 5, 0, 0x41, 0x80, 0x08, 0x0b, 2, 0, 0x0b, 2, 0, 0x0b) // alloc returns 1024
	section(0, append(append([]byte{byte(len(name))}, name...), '.')...)             // wazero refuses an empty one at the end
	return b
}

// TestPluginCountLimit: a deploy that would make more than host.MaxPlugins
// plugins active is refused on the leader (through a follower too) with
// ErrInvalid, and nothing is replicated; upgrades at the limit go through,
// and a removal makes room.
func TestPluginCountLimit(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 2})
	l := c.Leader()
	for i := len(l.Node.Plugins()); i < host.MaxPlugins; i++ {
		deploy(t, l.Node, fmt.Sprintf("p%02d", i), tinyModule(fmt.Sprintf("p%02d", i)))
	}
	last := l.Node.Stats().LastIndex
	for _, via := range c.Members {
		_, err := via.Node.DeployPlugin(context.Background(), "one-too-many", tinyModule("one-too-many"))
		if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("the limit is %d", host.MaxPlugins)) {
			t.Fatalf("plugin number %d, through %s: %v", host.MaxPlugins+1, via.ID, err)
		}
	}
	if got := l.Node.Stats().LastIndex; got != last {
		t.Fatalf("refused deploys were replicated: last index %d -> %d", last, got)
	}
	deploy(t, l.Node, "p01", tinyModule("p01 v2")) // an upgrade
	if err := l.Node.RemovePlugin(context.Background(), "p02", true); err != nil {
		t.Fatal(err)
	}
	deploy(t, c.Followers()[0].Node, "one-too-many", tinyModule("one-too-many"))
	if n := len(l.Node.Plugins()); n != host.MaxPlugins {
		t.Fatalf("%d plugins active, want %d", n, host.MaxPlugins)
	}
}

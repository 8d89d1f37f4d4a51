// Package cluster runs in-process raftkv clusters for tests: real host.Nodes
// talking over the real SSH transport, so tests can partition, crash and
// restart members. On TCP (the default) each node has its own 127.0.0.x
// address and sits behind a fault proxy; on the in-memory network
// (Options.Network = Mem, internal/memnet) each node is a host of the
// cluster's own network, which injects the partitions itself.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/faultproxy"
	"github.com/raftkv/raftkv/internal/hostseam"
	"github.com/raftkv/raftkv/internal/memnet"
	"github.com/raftkv/raftkv/internal/proctest"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// Options configures a cluster.
type Options struct {
	Nodes int
	// Configure adjusts each node's configuration before it starts.
	Configure func(*host.Config)
	// LogLevel for node logs routed to t.Log (default Warn).
	LogLevel slog.Level
	// Network is what the nodes talk over: TCP (also "") or Mem.
	Network string
}

// The networks of Options.Network.
const (
	// TCP: each node listens on its own 127.0.0.x address, behind a fault
	// proxy (Member.Proxy).
	TCP = "tcp"
	// Mem: each node is a host of an in-memory network of the cluster's own
	// (internal/memnet), named after the node and listening on port 7000;
	// there are no sockets and no proxies.
	Mem = "mem"
)

// Networks lists every network, for suites that run over each.
var Networks = []string{TCP, Mem}

// Cluster is a set of members; Members[0] bootstraps.
type Cluster struct {
	t        testing.TB
	opts     Options
	cacheDir string
	dir      string // the members' data directories are in it
	logs     *testWriter
	mem      *memnet.Network // the network of Mem; nil on TCP
	Members  []*Member
}

// Member is one node and, on TCP, its fault proxy.
type Member struct {
	ID    string
	IP    string            // TCP only: the node's loopback address
	Proxy *faultproxy.Proxy // TCP only: the node's advertised address
	Node  *host.Node        // nil while stopped
	cfg   host.Config
	addr  string // the advertised address

	nonVoter bool
}

var nextIP atomic.Uint32

// ip returns a loopback address not used by another member of this process.
func ip() string {
	n := nextIP.Add(1)
	return fmt.Sprintf("127.0.%d.%d", 10+n/250, 2+n%250)
}

// FastConfig returns a node configuration for tests. Raft keeps its default
// timeouts: shorter ones make leaders step down on a loaded 2-core machine
// under the race detector. Under the race detector the leader's lease is 1 s
// (the heartbeat timeout) instead of 500 ms: on a fresh VM of 2026-12-05 the
// leaders of in-process clusters lost their quorum's contact for 548-559 ms
// while a node joined or a plugin deployed (TestLogsFollowerDown,
// TestFailingMigrationKeepsOldVersion in CI); followers call elections
// exactly as before.
func FastConfig() host.Config {
	cfg := host.DefaultConfig()
	if raceEnabled {
		cfg.LeaderLeaseTimeout = cfg.HeartbeatTimeout
	}
	cfg.ApplyTimeout = 5 * time.Second
	cfg.QueryInstances = 2
	cfg.DefaultPlugin = kvwasm.Module
	// The tests share one compiled-code cache (SharedCache), which holds
	// far more than a node's bound; trimmed, it could evict the kv module
	// (13-26 s to compile again under a plain -race, 2-3 s under make test's
	// RACEFLAGS, wazero's compiler uninstrumented) while tests run.
	cfg.PluginCacheMaxBytes = 0
	return cfg
}

// Start starts a cluster of opts.Nodes members and waits until all have
// joined and the default plugin is active everywhere.
//
// A cluster of several nodes is a system test: under go test -short (make
// test-short, the unit suites) Start skips the test.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Nodes > 1 && testing.Short() {
		t.Skipf("a %d-node cluster over SSH: a system test, skipped under -short", opts.Nodes)
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = slog.LevelWarn
	}
	switch opts.Network {
	case "", TCP, Mem:
	default:
		t.Fatalf("cluster: unknown network %q (want %q or %q)", opts.Network, TCP, Mem)
	}
	// The data directories' parent is made before Close is registered, so
	// that the testing package removes it after Close (cleanups run last
	// registered first), never under running nodes.
	c := &Cluster{t: t, opts: opts, cacheDir: SharedCache(t), logs: &testWriter{t: t}, dir: t.TempDir()}
	if opts.Network == Mem {
		c.mem = memnet.New()
	}
	t.Cleanup(c.Close)
	for i := range opts.Nodes {
		c.Add(fmt.Sprintf("n%d", i+1), i == 0)
	}
	c.WaitConverged(opts.Nodes)
	return c
}

// PatientRaft gives a test cluster Raft timeouts (4 s, a 2 s lease) that a
// 2-core machine keeps under the race detector while the nodes, which share
// one process and its CPU, deploy and run big Go-built plugins. With the
// defaults (a 500 ms lease) the leader lost its quorum's contact for a
// second at a time on a fresh VM: every deploy attempt of
// examples/ledger's TestClusterUpgrade answered "leadership lost" (54 in
// CI), and host's TestDeployCatchUp failed 4 runs in 5, at a commit whose
// CI had passed the day before. For tests of applying, deploying, failing
// and catching up, not of election timing.
func PatientRaft(cfg *host.Config) {
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 4*time.Second, 4*time.Second, 2*time.Second
}

var (
	cacheOnce sync.Once
	cacheErr  error
)

// SharedCache returns a compiled-code cache shared by every node of every
// test binary, with the default plugin already compiled into it. Compiling
// kv.wasm takes 1-3 s, 13-26 s under a plain -race (2-3 s under make test's
// RACEFLAGS, wazero's compiler uninstrumented); doing it once, before
// any node starts, keeps a compile from starving Raft of CPU mid-test.
// wazero writes cache entries atomically, so concurrent test binaries may share it.
func SharedCache(t testing.TB) string {
	dir := filepath.Join(os.TempDir(), "raftkv-test-wasm-cache")
	cacheOnce.Do(func() {
		ctx := context.Background()
		cfg := plugin.DefaultConfig()
		cfg.CacheDir = dir
		// As a node loads it: trusted (host.Node), with the node's memory cap.
		cfg.Trusted = map[string]bool{plugin.HashOf(kvwasm.Module): true}
		cfg.MemoryLimitPages = host.DefaultConfig().PluginMemoryPages
		rt, err := plugin.NewRuntime(ctx, cfg)
		if err != nil {
			cacheErr = err
			return
		}
		defer rt.Close(ctx)
		lim := plugin.DefaultLimits()
		lim.MemoryPages = cfg.MemoryLimitPages
		_, cacheErr = rt.Load(ctx, kvwasm.Module, plugin.LoadOptions{Name: "kv", Limits: lim})
	})
	if cacheErr != nil {
		t.Fatalf("compiling the default plugin: %v", cacheErr)
	}
	return dir
}

// Add starts a new member. The first bootstraps; later ones are trusted and
// joined through the current leader.
func (c *Cluster) Add(id string, bootstrap bool) *Member {
	c.t.Helper()
	return c.add(id, bootstrap, false)
}

// AddNonVoter starts a new member and joins it as a non-voter.
func (c *Cluster) AddNonVoter(id string) *Member {
	c.t.Helper()
	return c.add(id, false, true)
}

// AddPending starts a new member and does not join it: a node waiting to
// be added, with an empty configuration (the test joins it, or not).
func (c *Cluster) AddPending(id string) *Member {
	c.t.Helper()
	return c.startMember(id, false, false)
}

func (c *Cluster) add(id string, bootstrap, nonVoter bool) *Member {
	c.t.Helper()
	m := c.startMember(id, bootstrap, nonVoter)
	if !bootstrap {
		c.join(m)
	}
	return m
}

func (c *Cluster) startMember(id string, bootstrap, nonVoter bool) *Member {
	c.t.Helper()
	if c.mem != nil {
		m := &Member{ID: id, addr: id + ":7000", nonVoter: nonVoter}
		if err := c.newNode(m, m.addr, bootstrap); err != nil {
			c.t.Fatalf("starting %s: %v", id, err)
		}
		c.Members = append(c.Members, m)
		return m
	}
	m := &Member{ID: id, IP: ip(), nonVoter: nonVoter}
	// The Raft port is found free, closed, and bound again by the node: a
	// test binary running beside this one (go test ./... runs packages in
	// parallel, each counting addresses from the same start) may take it in
	// between. Then the member starts again on another port.
	for attempt := 1; ; attempt++ {
		err := c.tryStartMember(m, bootstrap)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			c.t.Fatalf("starting %s: %v", id, err)
		}
		c.t.Logf("starting %s: %v; again on another port", id, err)
	}
	c.Members = append(c.Members, m)
	return m
}

// tryStartMember starts m on a new Raft port behind a new fault proxy.
func (c *Cluster) tryStartMember(m *Member, bootstrap bool) error {
	raftAddr := proctest.FreeAddr(c.t, m.IP)
	var err error
	if m.Proxy, err = faultproxy.New(m.IP+":0", raftAddr); err != nil {
		return err
	}
	m.addr = m.Proxy.Addr()
	if err := c.newNode(m, raftAddr, bootstrap); err != nil {
		m.Proxy.Close()
		return err
	}
	return nil
}

// newNode configures m's node to listen on raftAddr and advertise m.addr,
// and starts it.
func (c *Cluster) newNode(m *Member, raftAddr string, bootstrap bool) error {
	id := m.ID
	cfg := FastConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.AdvertiseAddr = id, filepath.Join(c.dir, id), raftAddr, m.addr
	cfg.Bootstrap, cfg.PluginCacheDir = bootstrap, c.cacheDir
	if c.mem != nil {
		hostseam.SetNetwork(&cfg, c.mem.Host(id))
	}
	// Lines at LogLevel go to t.Log; Logged searches every line from Info up.
	cfg.Logger = slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: c.opts.LogLevel}),
		slog.NewTextHandler(c.logs.kept(), &slog.HandlerOptions{Level: slog.LevelInfo}),
	))
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	m.cfg = cfg
	n, err := host.New(m.cfg)
	if err != nil {
		return err
	}
	m.Node = n
	return nil
}

func (c *Cluster) start(m *Member) {
	c.t.Helper()
	n, err := host.New(m.cfg)
	if err != nil {
		c.t.Fatalf("starting %s: %v", m.ID, err)
	}
	m.Node = n
}

func (c *Cluster) join(m *Member) {
	c.t.Helper()
	// Trust and Join are idempotent: retry them across leader changes (a
	// loaded machine can make a new cluster's first leader step down).
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = c.tryJoin(m); err == nil {
			return
		}
		c.t.Logf("joining %s (attempt %d): %v", m.ID, attempt+1, err)
		time.Sleep(500 * time.Millisecond)
	}
	c.t.Fatalf("joining %s: %v", m.ID, err)
}

func (c *Cluster) tryJoin(m *Member) error {
	// Join returns once the new member has caught up and been promoted to
	// voter: on a loaded machine, receiving the default plugin's deploy
	// entry (4 MB) alone can take seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := c.Leader()
	lines, err := l.Node.Trust(ctx, "", m.Node.TrustLine())
	if err != nil {
		return err
	}
	m.Node.ExpectLeaders(l.Node.Voters()) // as serve --join does
	if err := m.Node.AcceptTrust(lines); err != nil {
		return err
	}
	_, err = l.Node.Join(ctx, host.JoinRequest{NodeID: m.ID, Address: m.Addr(), NonVoter: m.nonVoter})
	return err
}

// Addr returns the address the member advertises and peers dial: its
// proxy's on TCP, "<ID>:7000" on Mem.
func (m *Member) Addr() string { return m.addr }

// DataDir returns the member's data directory (it outlives the node).
func (m *Member) DataDir() string { return m.cfg.DataDir }

// Member returns the member with the given ID.
func (c *Cluster) Member(id string) *Member {
	for _, m := range c.Members {
		if m.ID == id {
			return m
		}
	}
	c.t.Fatalf("no member %s", id)
	return nil
}

// Leader waits (up to 30 s) for a running member that leads and is ready.
func (c *Cluster) Leader() *Member {
	c.t.Helper()
	return c.LeaderOtherThan(nil)
}

// LeaderOtherThan waits for a ready leader that is not old (the majority's
// new leader after old was cut off) and returns it.
func (c *Cluster) LeaderOtherThan(old *Member) *Member {
	c.t.Helper()
	not := "-"
	if old != nil {
		not = old.ID
	}
	var l *Member
	Poll(c.t, 30*time.Second, func() bool {
		for _, m := range c.Members {
			if m != old && m.Node != nil && m.Node.IsLeader() && m.Node.Stats().Ready {
				l = m
				return true
			}
		}
		return false
	}, "no ready leader (other than %s): %s", not, lazy(c.describe))
	return l
}

func (c *Cluster) describe() string {
	var b strings.Builder
	for _, m := range c.Members {
		if m.Node == nil {
			fmt.Fprintf(&b, "[%s stopped] ", m.ID)
			continue
		}
		s := m.Node.Stats()
		fmt.Fprintf(&b, "[%s %s leader=%s term=%d commit=%d applied=%d ready=%v failure=%q] ",
			m.ID, s.State, s.Leader, s.Term, s.CommitIndex, s.AppliedIndex, s.Ready, s.Failure)
	}
	return b.String()
}

// Followers returns the running members that are not the leader.
func (c *Cluster) Followers() []*Member {
	l := c.Leader()
	var out []*Member
	for _, m := range c.Members {
		if m != l && m.Node != nil {
			out = append(out, m)
		}
	}
	return out
}

// WaitConverged waits until n members run, all report the same applied index
// as the leader's commit index, and every one has the default plugin.
func (c *Cluster) WaitConverged(n int) {
	c.t.Helper()
	c.WaitConvergedWithin(n, 30*time.Second)
}

// WaitConvergedWithin is WaitConverged with a time limit of its own: for a
// member that must replay long plugin calls first.
func (c *Cluster) WaitConvergedWithin(n int, limit time.Duration) {
	c.t.Helper()
	Poll(c.t, limit, func() bool {
		l := c.Leader()
		commit := l.Node.Stats().CommitIndex
		running := 0
		for _, m := range c.Members {
			if m.Node == nil {
				continue
			}
			running++
			// The last committed entries may be a new leader's no-op,
			// which no FSM sees: WaitApplied allows for that.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			err := m.Node.WaitApplied(ctx, commit)
			cancel()
			if err != nil || len(m.Node.Plugins()) == 0 {
				return false
			}
		}
		return running == n
	}, "cluster did not converge")
}

// Isolate cuts every connection to and from the member.
func (c *Cluster) Isolate(m *Member) {
	if c.mem != nil {
		c.mem.Isolate(m.ID)
		return
	}
	m.Proxy.Block("*")
	for _, o := range c.Members {
		if o != m {
			o.Proxy.Block(m.IP)
		}
	}
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	if c.mem != nil {
		c.mem.Heal()
		return
	}
	for _, m := range c.Members {
		m.Proxy.Heal()
	}
}

// Crash isolates the member and then stops it, so it cannot hand over
// leadership or say goodbye: to the others it simply disappears.
func (c *Cluster) Crash(m *Member) {
	c.Isolate(m)
	c.Stop(m)
	c.Heal()
}

// Stop shuts the member down gracefully.
func (c *Cluster) Stop(m *Member) {
	if m.Node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Node.Close(ctx); err != nil {
		c.t.Logf("closing %s: %v", m.ID, err)
	}
	m.Node = nil
}

// Reconfigure changes the member's configuration for its next start (see
// Restart), e.g. to restart a fail-stopped node with a fixed one.
func (m *Member) Reconfigure(f func(*host.Config)) { f(&m.cfg) }

// Restart starts a stopped member again from its data directory.
func (c *Cluster) Restart(m *Member) {
	c.t.Helper()
	c.Stop(m)
	m.cfg.Bootstrap = false
	c.start(m)
}

// Close stops every member and proxy.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		c.Stop(m)
		if m.Proxy != nil {
			m.Proxy.Close()
		}
	}
	c.logs.stop()
}

// Handshake connects to member to over SSH the way from's node does, with
// from's node ID and the key in its data directory (from need not be running),
// and calls to's ping RPC. It returns nil when to accepts the connection, and
// the error of the connection or SSH handshake when it refuses it.
func (c *Cluster) Handshake(from, to *Member) error {
	signer, err := transport.LoadOrCreateKey(from.cfg.DataDir)
	if err != nil {
		return err
	}
	trusted := &trust.Trust{}
	if err := trusted.Add(to.ID, to.Node.PublicKey()); err != nil {
		return err
	}
	addr := to.Addr()
	cfg := transport.Config{
		NodeID: from.ID, BindAddr: from.IP + ":0", Signer: signer, Trust: trusted, DialTimeout: 5 * time.Second,
		Resolve: func(a string) (string, bool) { return to.ID, a == addr },
	}
	if c.mem != nil {
		cfg.BindAddr, cfg.Network = from.ID+":0", c.mem.Host(from.ID)
	}
	tr, err := transport.New(cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The ping body is the node's empty RPC request (a MsgPack map).
	_, err = tr.Call(ctx, addr, "ping", []byte{0x80})
	var remote *transport.RemoteError
	if errors.As(err, &remote) {
		return nil // authenticated; the handler's answer does not matter here
	}
	return err
}

// Logged reports whether a node logged a line, at level Info or above,
// containing every one of subs.
func (c *Cluster) Logged(subs ...string) bool {
	return c.logs.contains(subs...)
}

// lazy formats as f() when printed.
type lazy func() string

func (f lazy) String() string { return f() }

// Poll calls cond every 20 ms until it returns true, failing after timeout.
func Poll(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testWriter routes node logs to t.Log until the cluster is closed; what is
// written to kept() is kept for Logged.
type testWriter struct {
	t     testing.TB
	mu    sync.Mutex
	done  bool
	lines []string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

type keptWriter struct{ w *testWriter }

func (w *testWriter) kept() io.Writer { return keptWriter{w} }

func (k keptWriter) Write(p []byte) (int, error) {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	k.w.lines = append(k.w.lines, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (w *testWriter) contains(subs ...string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			return true
		}
	}
	return false
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Deploy deploys a plugin through n. A deploy of the same module is
// idempotent, so it is retried when a leader change leaves its outcome
// unknown (a loaded test machine can make leaders step down).
func Deploy(t testing.TB, n *host.Node, name string, wasm []byte, opts ...host.DeployOptions) host.PluginInfo {
	t.Helper()
	var err error
	// Leadership may move more than once on a loaded machine: retry what
	// certainly or possibly did not take (a redeploy of the same module is
	// harmless) for a few minutes, not a few attempts.
	deadline := time.Now().Add(4 * time.Minute)
	for attempt := 1; attempt == 1 || time.Now().Before(deadline); attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var info host.PluginInfo
		if len(opts) > 0 {
			info, err = n.DeployPluginWith(ctx, name, wasm, opts[0])
		} else {
			info, err = n.DeployPlugin(ctx, name, wasm)
		}
		cancel()
		if err == nil {
			return info
		}
		if !errors.Is(err, host.ErrUnknownOutcome) && !errors.Is(err, host.ErrNotLeader) &&
			!errors.Is(err, host.ErrNoLeader) && !errors.Is(err, host.ErrTimeout) {
			break
		}
		t.Logf("deploying %s through %s (attempt %d): %v", name, n.ID(), attempt, err)
		time.Sleep(time.Second)
	}
	t.Fatalf("deploying %s through %s: %v", name, n.ID(), err)
	return host.PluginInfo{}
}

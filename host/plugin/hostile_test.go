package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// hostileWasm builds testdata/hostile, the misbehaving plugin (its doc lists
// the commands), with optional -X flags.
func hostileWasm(t testing.TB, flags ...string) []byte {
	return wasmbuild.Build(t, "./testdata/hostile", flags...)
}

// node is one replica's view of a plugin: an instance and a store.
type node struct {
	t  testing.TB
	in *plugin.Instance
	s  *state.Store
	ns *state.Namespace
}

func newNode(t testing.TB, r *plugin.Runtime, m *plugin.Module) *node {
	t.Helper()
	in, err := r.Instantiate(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	s := state.New()
	return &node{t: t, in: in, s: s, ns: s.Namespace("hostile")}
}

func loadHostile(t testing.TB, r *plugin.Runtime, opts plugin.LoadOptions, flags ...string) *plugin.Module {
	t.Helper()
	m, err := r.Load(context.Background(), hostileWasm(t, flags...), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// apply applies the entries as one batch and returns "code:payload" each.
func (n *node) apply(es []abi.Entry) []string {
	n.t.Helper()
	var res []abi.Result
	var err error
	n.s.Update(func() { res, err = n.in.Apply(context.Background(), n.ns, es) })
	if err != nil {
		n.t.Fatalf("apply: %v", err)
	}
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = fmt.Sprintf("%d:%s", r.Code, r.Data)
	}
	return out
}

func (n *node) query(q string) string {
	n.t.Helper()
	view, _ := n.s.View().Namespace("hostile")
	r, err := n.in.Query(context.Background(), view, []byte(q))
	if err != nil {
		n.t.Fatalf("query %q: %v", q, err)
	}
	return fmt.Sprintf("%d:%s", r.Code, r.Data)
}

func (n *node) digest() [32]byte { return n.s.View().Digest() }

// burnCPU keeps every core busy until the test ends, so that the node it
// runs beside is slower in wall-clock time.
func burnCPU(t testing.TB) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := uint64(1)
			for !stop.Load() {
				for range 1000 {
					x = x*6364136223846793005 + 1
				}
			}
			_ = x
		}()
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
}

// hostileCommands are the hostile plugin's misbehaviours, each with the
// result every node must record for it.
var hostileCommands = []struct {
	cmd, want string // want: "code:" prefix of the result, or the whole result
}{
	{"loop", fmt.Sprintf("%d:out of fuel", abi.CodeOutOfFuel)},
	{"loopcalls", fmt.Sprintf("%d:out of fuel", abi.CodeOutOfFuel)},
	{"recurse", fmt.Sprintf("%d:out of fuel", abi.CodeOutOfFuel)}, // see TestDeepRecursion
	{"membomb", fmt.Sprintf("%d:wasm error: unreachable: runtime: out of memory", abi.CodeTrap)},
	{"statebomb 100 65536", fmt.Sprintf("%d:the entry writes more than max_write_bytes", abi.CodeTooLarge)},
	{"logbomb 100", "0:ok"},
	{"logbomb 100000", fmt.Sprintf("%d:out of fuel", abi.CodeOutOfFuel)}, // 200 MB of output
	{"clock", "0:"},
	{"random", "0:"},
	{"set after ok", "0:ok"},
}

// TestHostileDeterministic plays every hostile command on two replicas that
// differ in everything but the log: one is fresh and runs each command in a
// batch of its own; the other runs in another runtime, beside busy CPUs,
// after its instance applied other entries, with all the commands in one
// batch. Every command gets the same result on both (out_of_fuel for the
// loops, whatever the machine's speed), the state stays identical, and the
// next command succeeds.
func TestHostileDeterministic(t *testing.T) {
	ra := newRuntime(t, 0)
	a := newNode(t, ra, loadHostile(t, ra, testOpts))
	rb := newRuntime(t, 0)
	b := newNode(t, rb, loadHostile(t, rb, testOpts))
	// b's history, against another store: its instance has run code, grown
	// memory, drawn randomness and read the clocks.
	warm := state.New()
	warmNS := warm.Namespace("hostile")
	warm.Update(func() {
		if _, err := b.in.Apply(context.Background(), warmNS, batch(1, "set w 1", "random", "clock", "counter", "print hi", "statebomb 10 100")); err != nil {
			t.Fatal(err)
		}
	})

	var cmds []string
	for _, h := range hostileCommands {
		cmds = append(cmds, h.cmd)
	}
	es := batch(100, cmds...)
	var gotA []string
	for i := range es {
		gotA = append(gotA, a.apply(es[i:i+1])...)
	}
	burnCPU(t)
	gotB := b.apply(es)
	for i, h := range hostileCommands {
		if !strings.HasPrefix(gotA[i], h.want) {
			t.Errorf("%s: got %.120q, want %q…", h.cmd, gotA[i], h.want)
		}
		if gotA[i] != gotB[i] {
			t.Errorf("%s: the replicas disagree:\n%.200q\n%.200q", h.cmd, gotA[i], gotB[i])
		}
	}
	if a.digest() != b.digest() {
		t.Error("the replicas' states differ")
	}
	// The next command succeeds, on both.
	for _, n := range []*node{a, b} {
		expect(t, n.apply(batch(200, "set next 1", "get next")), "0:ok", "0:1")
	}
	// Queries too: a looping query runs out of its own fuel.
	for _, n := range []*node{a, b} {
		if got := n.query("loop"); !strings.HasPrefix(got, fmt.Sprintf("%d:out of fuel", abi.CodeOutOfFuel)) {
			t.Errorf("looping query: %q", got)
		}
		if got := n.query("get next"); got != "0:1" {
			t.Errorf("query after a looping one: %q", got)
		}
	}
	if c := a.in.Module().Counters(); c.OutOfFuel != 5 || c.QuotaExceeded != 1 {
		t.Errorf("counters %+v: want 5 out_of_fuel (4 entries, 1 query), 1 quota", c)
	}
}

// TestFreshAndUsedInstancesAgree: WASI's clocks and random source are
// functions of the entry (its time; its index and term), not of the
// instance: an instance that already handled entries, as on a node that
// never restarted, computes what a fresh one computes, as on a node that
// restored a snapshot. (wazero's defaults advance per instance.)
func TestFreshAndUsedInstancesAgree(t *testing.T) {
	r := newRuntime(t, 0)
	m := loadHostile(t, r, testOpts)
	used := newNode(t, r, m)
	for i := range 20 {
		used.apply(batch(uint64(1+i), "random", "clock", "set k v"))
	}
	fresh := newNode(t, r, m)
	e := []abi.Entry{
		{Index: 500, Term: 3, Time: 1_700_000_000_000_000_000, Data: []byte("clock")},
		{Index: 501, Term: 3, Time: 1_700_000_000_000_000_000, Data: []byte("random")},
		{Index: 502, Term: 4, Time: 1_700_000_000_000_000_000, Data: []byte("random")},
	}
	a, b := fresh.apply(e), used.apply(e)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("entry %d: fresh instance %q, used instance %q", e[i].Index, a[i], b[i])
		}
	}
	// The clock reads the entry's time and a sleep advances it.
	f := strings.Fields(strings.TrimPrefix(a[0], "0:"))
	before, _ := strconv.ParseInt(f[0], 10, 64)
	after, _ := strconv.ParseInt(f[1], 10, 64)
	if t0 := e[0].Time; before < t0 || before > t0+int64(time.Millisecond) || after-before < int64(time.Second) {
		t.Fatalf("clock: %d then %d, entry time %d and a 1 s sleep", before, after, t0)
	}
	// Randomness is per entry: another index or term draws other bytes.
	if a[1] == a[2] {
		t.Fatal("two entries drew the same random bytes")
	}
}

// TestDeepRecursion: with fuel to spare, unbounded recursion stops at the
// call-stack budget (plugin.StackSlots), at the same depth on every
// instance, long before the engine's stack limit; a trusted plugin
// (Limits.Trusted, no fuel) keeps the budget and stops at the same depth.
func TestDeepRecursion(t *testing.T) {
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = 4096 // Go's stack grows in guest memory first
	cfg.CacheDir = testCacheDir
	r, err := plugin.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	opts := testOpts
	opts.Limits.ApplyFuel, opts.Limits.MemoryPages = plugin.MaxFuel, 4096
	m := loadHostile(t, r, opts)
	a, b := newNode(t, r, m), newNode(t, r, m)
	b.apply(batch(1, "recurse", "set x y"))
	e := batch(10, "recurse", "set after ok")
	got := a.apply(e)
	if !strings.HasPrefix(got[0], fmt.Sprintf("%d:call stack exhausted", abi.CodeTrap)) || got[1] != "0:ok" {
		t.Fatalf("recursion: %q", got)
	}
	if other := b.apply(e); other[0] != got[0] {
		t.Fatalf("another instance: %q, want %q", other[0], got[0])
	}
	opts.Limits.Trusted = true
	c := newNode(t, r, loadHostile(t, r, opts))
	if trusted := c.apply(e); trusted[0] != got[0] || trusted[1] != "0:ok" {
		t.Fatalf("trusted: %q, want %q", trusted, got)
	}
}

// TestCallLimitFitsTheBudget: a metered call's wall-clock limit is the
// node's CallTimeout or the time its budget takes to burn at
// SlowFuelPerSecond, whichever is longer. On a runtime whose CallTimeout
// (200 ms) is shorter than the time 300,000,000 units of fuel take on any
// machine (600 million a second at best: BenchmarkFuelRate), the hostile
// plugin deployed with that budget loads (its initialiser has the load
// fuel's time), and runs its loop out of fuel, a result, instead of
// reaching the limit (an error: the node would stop), for an entry and for
// a query; the next command succeeds.
func TestCallLimitFitsTheBudget(t *testing.T) {
	r := newRuntime(t, 200*time.Millisecond)
	opts := testOpts
	opts.Limits.ApplyFuel, opts.Limits.QueryFuel = 300_000_000, 300_000_000
	m := loadHostile(t, r, opts)
	if got, want := r.CallLimit(m, opts.Limits.ApplyFuel), 300*time.Second; got != want {
		t.Errorf("CallLimit of an entry with 3e8 fuel: %v, want %v", got, want)
	}
	if got, want := r.CallLimit(m, 10_000), 1*time.Second; got != want {
		t.Errorf("CallLimit of a call with 10,000 fuel: %v, want %v (FuelTime rounds up)", got, want)
	}
	// Running the loop: 100M fuel (some 0.65 s here, past the 200 ms
	// CallTimeout) runs out of fuel rather than out of time.
	opts.Limits.ApplyFuel, opts.Limits.QueryFuel = 100_000_000, 100_000_000
	n := newNode(t, r, loadHostile(t, r, opts))
	start := time.Now()
	expect(t, n.apply(batch(1, "loop", "set a 1")), fmt.Sprintf("%d:out of fuel: used the budget of 100000000", abi.CodeOutOfFuel), "0:ok")
	t.Logf("a loop of 100,000,000 fuel: %v", time.Since(start).Round(time.Millisecond))
	if got := n.query("loop"); !strings.HasPrefix(got, fmt.Sprintf("%d:out of fuel", abi.CodeOutOfFuel)) {
		t.Fatalf("a looping query with 1e8 fuel: %q", got)
	}
	expect(t, n.apply(batch(3, "get a")), "0:1")
}

// TestTrustedRunsUnmetered: a plugin deployed trusted (Limits.Trusted)
// runs without fuel: a loop, which nothing else stops, reaches the
// wall-clock limit (ErrTimeLimit: the node must stop applying) instead of
// running out of fuel, and the runtime serves the next call. (It keeps the
// call-stack budget: TestDeepRecursion.)
func TestTrustedRunsUnmetered(t *testing.T) {
	r := newRuntime(t, time.Second)
	opts := testOpts
	opts.Limits.Trusted = true
	n := newNode(t, r, loadHostile(t, r, opts))
	var res []abi.Result
	var err error
	n.s.Update(func() { res, err = n.in.Apply(context.Background(), n.ns, batch(3, "set b 1", "loop", "set c 1")) })
	if !errors.Is(err, plugin.ErrTimeLimit) || len(res) != 1 || !res[0].OK() {
		t.Fatalf("a trusted loop: results %+v, error %v; want one ok and ErrTimeLimit", res, err)
	}
	expect(t, n.apply(batch(4, "get b", "set d 1")), "0:1", "0:ok")
	if c := n.in.Module().Counters(); c.OutOfFuel != 0 || c.FuelUsed != 0 {
		t.Fatalf("counters of a trusted plugin %+v: no fuel is counted", c)
	}
}

// TestLoopDoesNotPauseTheProcess: a plugin looping for two seconds does not
// pause the rest of its process, its node's Raft included, while the
// process collects garbage. Go cannot preempt a goroutine inside compiled
// wasm code, and the collector's stop-the-world waits for every goroutine;
// a module compiled without wazero's termination checks (Config.Trusted:
// only the embedded default plugin) holds the whole process for as long as
// it loops (measured: a ticker's gap was the loop's 3.4 s). Every other
// module calls into Go at each loop header, where it can be preempted.
// Here the plugin is Limits.Trusted (unmetered, with the checks) so that
// the loop lasts the wall-clock limit on any machine; metered loops have
// the same checks. Without them the loop would not stop at all.
func TestLoopDoesNotPauseTheProcess(t *testing.T) {
	const spin = 2 * time.Second
	r := newRuntime(t, spin)
	opts := testOpts
	opts.Limits.Trusted = true
	n := newNode(t, r, loadHostile(t, r, opts))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sink atomic.Pointer[[]byte]
	var maxGap atomic.Int64
	wg.Add(2)
	go func() { // allocates, so the collector runs and stops the world
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b := make([]byte, 64<<10)
			sink.Store(&b)
		}
	}()
	go func() { // stands for Raft's heartbeats: how long was it held up?
		defer wg.Done()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			now := time.Now()
			if g := int64(now.Sub(last)); g > maxGap.Load() {
				maxGap.Store(g)
			}
			last = now
		}
	}()
	start := time.Now()
	var err error
	n.s.Update(func() { _, err = n.in.Apply(context.Background(), n.ns, batch(1, "loop")) })
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if !errors.Is(err, plugin.ErrTimeLimit) {
		t.Fatalf("a loop with a %v limit: %v, want ErrTimeLimit", spin, err)
	}
	gap := time.Duration(maxGap.Load())
	t.Logf("the loop ran %v; the longest a ticker goroutine waited: %v", took.Round(time.Millisecond), gap.Round(time.Millisecond))
	if gap > took/2 {
		t.Fatalf("a goroutine beside a %v plugin loop waited %v: the loop held the process", took.Round(time.Millisecond), gap)
	}
}

// TestGuestMemoryPersists documents what the host cannot prevent cheaply
// (ABI.md, section 5): a plugin that keeps state in guest memory across
// entries computes differently on an instance with another history. Nothing
// detects it yet but comparing the nodes' state digests.
func TestGuestMemoryPersists(t *testing.T) {
	r := newRuntime(t, 0)
	m := loadHostile(t, r, testOpts)
	used := newNode(t, r, m)
	used.apply(batch(1, "counter", "counter", "counter"))
	fresh := newNode(t, r, m)
	e := batch(10, "counter")
	if a, b := fresh.apply(e)[0], used.apply(e)[0]; a != "0:1" || b != "0:4" {
		t.Fatalf("counter: fresh %q, used %q; want 0:1 and 0:4", a, b)
	}
}

// TestTrapMessageIsTheEntrysOwn: a trap's message holds only what the
// trapping entry printed, never the output of earlier entries of the
// instance (their order differs between nodes).
func TestTrapMessageIsTheEntrysOwn(t *testing.T) {
	r := newRuntime(t, 0)
	n := newNode(t, r, loadHostile(t, r, testOpts))
	n.apply(batch(1, "print hello from an earlier batch"))
	got := n.apply(batch(2, "print hello from an earlier entry", "panic boom"))
	want := fmt.Sprintf("%d:wasm error: unreachable: panic: boom", abi.CodeTrap)
	if got[1] != want {
		t.Fatalf("trap message %q, want %q", got[1], want)
	}
}

// TestStateQuotas: an entry that writes more than MaxWriteBytes, or would
// make the namespace hold more than MaxNamespaceKeys keys or
// MaxNamespaceBytes bytes, is too_large and changes nothing, whatever the
// plugin reports; writes within the quotas succeed, also after.
func TestStateQuotas(t *testing.T) {
	r := newRuntime(t, 0)
	opts := testOpts
	opts.Limits.MaxWriteBytes = 10_000
	opts.Limits.MaxNamespaceKeys = 5
	opts.Limits.MaxNamespaceBytes = 1_000
	n := newNode(t, r, loadHostile(t, r, opts))
	tooLarge := fmt.Sprintf("%d:", abi.CodeTooLarge)
	got := n.apply(batch(1,
		"statebomb 2 6000", // 12 KB in one entry
		"statebomb 6 1",    // 6 keys
		"statebomb 5 100",  // 5 keys, 5 × 112 bytes: fits
		"statebomb 5 200",  // rewrites them bigger: 5 × 212 > 1000 bytes
		"set k v",          // a 6th key
	))
	for i, w := range []string{tooLarge + "the entry writes more than max_write_bytes",
		tooLarge + "the namespace would hold more than max_namespace_keys",
		"0:ok",
		tooLarge + "the namespace would hold more than max_namespace_bytes",
		tooLarge + "the namespace would hold more than max_namespace_keys"} {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("entry %d: got %q, want %q…", i+1, got[i], w)
		}
	}
	if n.ns.Len() != 5 || n.ns.Bytes() != 5*(12+100) {
		t.Fatalf("namespace: %d keys, %d bytes; want the 5 keys of entry 3", n.ns.Len(), n.ns.Bytes())
	}
	// Replacing a key within the byte quota is fine.
	expect(t, n.apply(batch(10, "set bomb00000000 x")), "0:ok")
	if c := n.in.Module().Counters(); c.QuotaExceeded != 4 {
		t.Fatalf("counters %+v, want 4 quota refusals", c)
	}
}

// syncBuffer is a log destination the test reads while plugins write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogQuota: an entry's log output (log calls, stdout, stderr) is cut at
// MaxLogBytes and the excess counted, the same on every node; what remains
// reaches the node log tagged with the plugin's name, within a rate limit;
// the output of replayed entries (up to SetQuietThrough) is suppressed.
func TestLogQuota(t *testing.T) {
	var out syncBuffer
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = 256
	cfg.Logger = slog.New(slog.NewTextHandler(&out, nil))
	r, err := plugin.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	opts := testOpts
	opts.Name = "bomber"
	opts.Limits.MaxLogBytes = 10 << 10
	m := loadHostile(t, r, opts)
	n := newNode(t, r, m)

	expect(t, n.apply(batch(1, "logbomb 100")), "0:ok")
	c := m.Counters()
	// 100 log calls of 1024 bytes and 100 stdout lines of 1023 bytes (a
	// line break is not counted); 10 KiB kept.
	if want := uint64(100*1024 + 100*1023 - 10<<10); c.LogBytesDropped != want {
		t.Fatalf("dropped %d log bytes, want %d", c.LogBytesDropped, want)
	}
	// Alternating log calls (1024 bytes) and prints (1023): ten whole lines
	// fill 10235 bytes, the eleventh keeps the last 5.
	lines := strings.Count(out.String(), "plugin=bomber")
	if lines != 11 || strings.Contains(out.String(), `\n`) || !strings.Contains(out.String(), `msg=xxxxx plugin=bomber`) {
		t.Fatalf("%d lines of the plugin in the node log, want 11, the last of 5 bytes:\n%.500s", lines, out.String())
	}

	// Replaying entries 1 to 5: nothing logged, suppressed lines counted.
	r.SetQuietThrough(5)
	expect(t, n.apply(batch(2, "logbomb 2", "print replayed")), "0:ok", "0:ok")
	if now := strings.Count(out.String(), "plugin=bomber"); now != lines {
		t.Fatalf("replayed entries logged %d lines", now-lines)
	}
	if c := m.Counters(); c.LogLinesSuppressed != 5 {
		t.Fatalf("counters %+v: want 5 suppressed lines", c)
	}
	expect(t, n.apply(batch(6, "print live")), "0:ok")
	if !strings.Contains(out.String(), "msg=live") {
		t.Fatalf("entry 6 (after the replay) not logged:\n%s", out.String())
	}

	// The rate limit: more lines than the burst in an instant.
	r.SetQuietThrough(0)
	m2 := loadHostile(t, r, plugin.LoadOptions{Name: "flood", Limits: func() plugin.Limits {
		l := opts.Limits
		l.MaxLogBytes = 1 << 20
		return l
	}()})
	n2 := newNode(t, r, m2)
	expect(t, n2.apply(batch(1, "logbomb 300")), "0:ok")
	if c := m2.Counters(); c.LogLinesRateLimited == 0 || c.LogBytesDropped != 0 {
		t.Fatalf("counters %+v: want lines dropped by the rate limit, no bytes over the quota", c)
	}
	if logged := strings.Count(out.String(), "plugin=flood"); logged >= 600 {
		t.Fatalf("%d of 600 lines logged despite the rate limit", logged)
	}
}

// TestLoadOutOfFuel: a module whose initialiser or raftkv_info loops is
// refused (ErrInvalidModule, "out of fuel"), the same on every node; it is
// not a time limit.
func TestLoadOutOfFuel(t *testing.T) {
	r := newRuntime(t, 0)
	opts := testOpts
	opts.Limits.LoadFuel = plugin.MinFuel * 1000
	for _, flag := range []string{"-X main.initLoop=yes", "-X main.infoLoop=yes"} {
		_, err := r.Load(context.Background(), hostileWasm(t, flag), opts)
		if !errors.Is(err, plugin.ErrInvalidModule) || errors.Is(err, plugin.ErrTimeLimit) || !strings.Contains(err.Error(), "out of fuel") {
			t.Fatalf("%s: Load: %v; want ErrInvalidModule, out of fuel", flag, err)
		}
	}
	if n := r.OpenModules(); n != 0 {
		t.Fatalf("%d modules open after refused loads", n)
	}
}

// TestLimitsValidated: Load refuses invalid limits (ErrLimits) and limits
// over the node's configuration (ErrNodeLimit, not a refusal of the module).
func TestLimitsValidated(t *testing.T) {
	r := newRuntime(t, 0) // 256 pages
	wasm := hostileWasm(t)
	bad := testOpts
	bad.Limits.ApplyFuel = 0
	if _, err := r.Load(context.Background(), wasm, bad); !errors.Is(err, plugin.ErrLimits) {
		t.Fatalf("zero apply fuel: %v, want ErrLimits", err)
	}
	big := testOpts
	big.Limits.MemoryPages = 257
	if _, err := r.Load(context.Background(), wasm, big); !errors.Is(err, plugin.ErrNodeLimit) || errors.Is(err, plugin.ErrInvalidModule) {
		t.Fatalf("memory over the node's cap: %v, want ErrNodeLimit", err)
	}
	if err := plugin.DefaultLimits().Validate(); err != nil {
		t.Fatalf("default limits: %v", err)
	}
}

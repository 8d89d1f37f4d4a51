package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/fsmtest"
	"github.com/raftkv/raftkv/internal/hostseam"
	"github.com/raftkv/raftkv/internal/kvmodel"
	"github.com/raftkv/raftkv/internal/sdknative"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
	"github.com/raftkv/raftkv/plugins/sdk"
)

var kvHash = plugin.HashOf(kvwasm.Module)

// nativeOn makes the listed nodes run p for the embedded KV module.
func nativeOn(cfg *host.Config, p sdk.Plugin, ids ...string) {
	if slices.Contains(ids, cfg.NodeID) {
		hostseam.SetNativePlugins(cfg, map[string]plugin.Code{kvHash: sdknative.Code(p)})
	}
}

func wantEngine(t *testing.T, m *cluster.Member, want string) {
	t.Helper()
	if got := host.PluginEngine(m.Node, "kv"); got != want {
		t.Fatalf("%s runs kv on %q, want %q", m.ID, got, want)
	}
}

func sameResult(a, b abi.Result) bool { return a.Code == b.Code && bytes.Equal(a.Data, b.Data) }

// TestNativeKVMatchesWasm: in a 3-node cluster where n1 runs the KV plugin's
// Go code natively and n2, n3 run kv.wasm, seeded random KV commands (every
// operation, good and malformed) give the reference model's results whether
// the leader that computed them is native or wasm; every query answers the
// same on the native and the wasm nodes; n1 restarted from its own snapshot
// still runs natively; and after concurrent writes through every member all
// three report the same state digest at the same applied index.
func TestNativeKVMatchesWasm(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		nativeOn(cfg, kvplugin.KV{}, "n1")
		// Snapshots during the test, so that a restart restores one.
		cfg.SnapshotThreshold, cfg.SnapshotInterval = 200, 100*time.Millisecond
		// Raft timeouts that a loaded 2-core machine under the race detector
		// keeps: this test compares engines, one leader a phase (a leader that
		// lost its quorum's contact for 500 ms failed it in CI with "leadership
		// lost, write outcome unknown"); the phases hand leadership over.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 4*time.Second, 4*time.Second, 2*time.Second
	}})
	engine := map[string]string{"n1": "native", "n2": "wasm", "n3": "wasm"}
	for _, m := range c.Members {
		wantEngine(t, m, engine[m.ID])
	}
	ctx := context.Background()
	const chunk = 300
	steps := fsmtest.Steps(7, 6*chunk)
	model := kvmodel.New()
	var last uint64 // log index of the last command applied
	commands, queries := 0, 0

	// query runs q on every member (stale reads of its own state, once it has
	// applied the last command) and compares each answer with the model's.
	query := func(step int, q []byte) {
		t.Helper()
		if len(q) > abi.MaxCommandSize {
			return
		}
		want := model.Query(q)
		for _, m := range c.Members {
			cluster.Poll(t, 10*time.Second, func() bool { return m.Node.AppliedIndex() >= last }, "%s did not apply index %d", m.ID, last)
			got, err := m.Node.Query(ctx, "kv", q, host.Stale)
			if err != nil || !sameResult(got, want) {
				t.Fatalf("step %d: query %.200q on %s (%s): %v, %.300q, %v; the model answers %v, %.300q",
					step, q, m.ID, engine[m.ID], got.Code, got.Data, err, want.Code, want.Data)
			}
		}
		queries++
	}
	// apply proposes cmd through the leader l and compares the result its
	// engine computed with the model's for the same entry.
	apply := func(step int, l *cluster.Member, cmd []byte) {
		t.Helper()
		before := l.Node.Stats().LastIndex
		res, err := l.Node.Apply(ctx, "kv", cmd)
		if len(cmd) > abi.MaxCommandSize {
			if !errors.Is(err, host.ErrInvalid) {
				t.Fatalf("step %d: a %d-byte command: %v, want ErrInvalid", step, len(cmd), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("step %d: apply on %s: %v", step, l.ID, err)
		}
		index := before + 1
		if after := l.Node.Stats().LastIndex; after != index {
			t.Fatalf("step %d: the log grew from %d to %d around one command: the model cannot know its index", step, before, after)
		}
		want := model.Apply([]abi.Entry{{Index: index, Term: 1, Data: cmd}})[0]
		if !sameResult(res, want) {
			t.Fatalf("step %d: command %.200q at index %d on %s (%s): %v, %.300q; the model: %v, %.300q",
				step, cmd, index, l.ID, engine[l.ID], res.Code, res.Data, want.Code, want.Data)
		}
		last = index
		commands++
	}

	// Phases of chunk steps, each led by one member; between phases the
	// leader stops (handing leadership over) and restarts. Until both engines
	// have led a phase, and at least three phases.
	led := map[string]bool{}
	for phase := 0; phase < 6 && (phase < 3 || len(led) < 2); phase++ {
		l := c.Leader()
		led[engine[l.ID]] = true
		t.Logf("phase %d: %s (%s) leads", phase, l.ID, engine[l.ID])
		for i := phase * chunk; i < (phase+1)*chunk; i++ {
			if steps[i].Query {
				query(i, steps[i].Data)
			} else {
				apply(i, l, steps[i].Data)
			}
		}
		cluster.Poll(t, 20*time.Second, func() bool {
			idx, _ := strconv.Atoi(l.Node.Stats().Raft["last_snapshot_index"])
			return idx > 0
		}, "%s took no snapshot", l.ID)
		c.Stop(l)
		c.Leader()
		c.Restart(l) // restores its snapshot, then replays the rest of its log
		wantEngine(t, l, engine[l.ID])
	}
	if len(led) < 2 {
		t.Fatalf("only %v engines led a phase", led)
	}
	digestsAgree(t, c, "kv")

	// Concurrent writes through every member: batches of several entries,
	// applied by both engines.
	ops := fsmtest.Ops(8, 800)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < len(ops); i += 8 {
				if len(ops[i]) > abi.MaxCommandSize {
					continue
				}
				m := c.Members[r.IntN(len(c.Members))]
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := m.Node.Apply(cctx, "kv", ops[i])
				cancel()
				if err != nil {
					errc <- fmt.Errorf("op %d through %s: %w", i, m.ID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	d := digestsAgree(t, c, "kv")
	t.Logf("%d commands and %d queries checked against the model; then %d concurrent commands; digest %s at index %d, %d keys",
		commands, queries, len(ops), d.Digest[:16], d.AppliedIndex, d.Keys)
}

// trapKV is the KV plugin with a bug: a command or query mentioning "boom"
// writes a key, then panics.
type trapKV struct{ kvplugin.KV }

func (p trapKV) AppendApply(dst []byte, st sdk.State, e sdk.Entry) ([]byte, error) {
	if bytes.Contains(e.Data, []byte("boom")) {
		if err := st.Set([]byte("half-written"), []byte("x")); err != nil {
			return dst, err
		}
		panic("boom in apply")
	}
	return p.KV.AppendApply(dst, st, e)
}

func (p trapKV) Apply(st sdk.State, e sdk.Entry) ([]byte, error) { return p.AppendApply(nil, st, e) }

func (p trapKV) AppendQuery(dst []byte, st sdk.State, q []byte) ([]byte, error) {
	if bytes.Contains(q, []byte("boom")) {
		panic("boom in query")
	}
	return p.KV.AppendQuery(dst, st, q)
}

func (p trapKV) Query(st sdk.State, q []byte) ([]byte, error) { return p.AppendQuery(nil, st, q) }

// TestNativePanicIsTrapResult: on a node running the KV plugin natively, a
// panic while applying is that command's trap result (its writes undone, the
// node still applying and healthy, the other commands of its batch applied),
// and a panic in a query is a trap result too.
func TestNativePanicIsTrapResult(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 1, Configure: func(cfg *host.Config) {
		nativeOn(cfg, trapKV{}, "n1")
	}})
	n := c.Members[0]
	wantEngine(t, n, "native")
	ctx := context.Background()
	mustSet(t, n.Node, "a", "1")
	res, err := n.Node.Apply(ctx, "kv", cmd(t, map[string]any{"op": "SET", "key": "boom", "value": "v"}))
	if err != nil || res.Code != abi.CodeTrap || !strings.Contains(string(res.Data), "panic: boom in apply") {
		t.Fatalf("panicking command: %v %q, %v; want a trap result", res.Code, res.Data, err)
	}
	if _, err := get(t, n.Node, "half-written", host.Leader); !errors.Is(err, notFound) {
		t.Fatalf("the trapped command's write: %v, want not found", err)
	}

	// Concurrent commands share batches: the panics cost only their own entry.
	var wg sync.WaitGroup
	results := make([]abi.Result, 64)
	errs := make([]error, len(results))
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k%02d", i)
			if i%4 == 0 {
				key = fmt.Sprintf("boom%02d", i)
			}
			results[i], errs[i] = n.Node.Apply(ctx, "kv", cmd(t, map[string]any{"op": "SET", "key": key, "value": "v"}))
		}()
	}
	wg.Wait()
	for i := range results {
		want := abi.CodeOK
		if i%4 == 0 {
			want = abi.CodeTrap
		}
		if errs[i] != nil || results[i].Code != want {
			t.Fatalf("command %d: %v %q, %v; want %v", i, results[i].Code, results[i].Data, errs[i], want)
		}
		if want == abi.CodeOK {
			mustGet(t, n.Node, fmt.Sprintf("k%02d", i), host.Leader, "v")
		}
	}
	if _, err := get(t, n.Node, "half-written", host.Leader); !errors.Is(err, notFound) {
		t.Fatalf("a trapped command's write: %v, want not found", err)
	}

	res, err = n.Node.Query(ctx, "kv", cmd(t, map[string]any{"op": "GET", "key": "boom"}), host.Stale)
	if err != nil || res.Code != abi.CodeTrap || !strings.Contains(string(res.Data), "panic: boom in query") {
		t.Fatalf("panicking query: %v %q, %v; want a trap result", res.Code, res.Data, err)
	}
	mustGet(t, n.Node, "a", host.Linearizable, "1")
	mustSet(t, n.Node, "b", "2")
	if s := n.Node.Stats(); s.Failure != "" || !s.Ready {
		t.Fatalf("node after the panics: failure %q, ready %v", s.Failure, s.Ready)
	}
}

// TestConfigNativePlugins: Validate refuses a native plugins key that is not a
// module hash and a nil implementation, and accepts the KV mapping.
func TestConfigNativePlugins(t *testing.T) {
	kv := sdknative.Code(kvplugin.KV{})
	base := host.DefaultConfig()
	base.NodeID, base.DataDir = "n1", t.TempDir()
	for _, tc := range []struct {
		name    string
		natives map[string]plugin.Code
		want    string // "" for valid
	}{
		{"kv", map[string]plugin.Code{kvHash: kv}, ""},
		{"short", map[string]plugin.Code{kvHash[:63]: kv}, "is not a module hash"},
		{"upper", map[string]plugin.Code{strings.ToUpper(kvHash): kv}, "is not a module hash"},
		{"name", map[string]plugin.Code{"kv": kv}, "is not a module hash"},
		{"nil", map[string]plugin.Code{kvHash: nil}, "nil plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			hostseam.SetNativePlugins(&cfg, tc.natives)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/sdknative"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// migrating is the KV plugin with a migration that records what it saw,
// then succeeds, fails or panics.
type migrating struct {
	kvplugin.KV
	outcome string // "ok", "fail" or "panic"
}

func (m migrating) Migrate(st sdk.State, mig abi.Migration) error {
	e := sdk.EntryOf(st)
	if err := st.Set([]byte("migrated-from"), []byte(mig.FromVersion+"@"+strconv.FormatUint(e.Index, 10))); err != nil {
		return err
	}
	switch m.outcome {
	case "fail":
		return sdk.Errorf(abi.CodeConflict, "refused")
	case "panic":
		panic("migration bug")
	}
	return nil
}

// TestNativeMigrate: Native.Migrate runs the plugin's Migrator at the deploy
// entry and keeps its writes only when it succeeds (an error or a panic is
// its result and undoes them); a plugin without a Migrator accepts the
// upgrade; a closed Native refuses every call.
func TestNativeMigrate(t *testing.T) {
	ctx := context.Background()
	mig := abi.Migration{FromHash: "abc", FromVersion: "0.9", Index: 42}
	meta := abi.Entry{Index: 42, Term: 3, Time: 7}
	for _, tc := range []struct {
		p    sdk.Plugin
		code abi.Code
		kept bool
	}{
		{migrating{outcome: "ok"}, abi.CodeOK, true},
		{migrating{outcome: "fail"}, abi.CodeConflict, false},
		{migrating{outcome: "panic"}, abi.CodeTrap, false},
		{kvplugin.KV{}, abi.CodeOK, false},
	} {
		t.Run(fmt.Sprintf("%T/%v", tc.p, tc.code), func(t *testing.T) {
			n := plugin.NewNative(sdknative.Code(tc.p))
			h := newHostTarget(t, n)
			var res abi.Result
			var err error
			h.s.Update(func() { res, err = n.Migrate(ctx, h.ns, mig, meta) })
			if err != nil || res.Code != tc.code {
				t.Fatalf("Migrate: %v %q, %v; want %v", res.Code, res.Data, err, tc.code)
			}
			v, ver, ok := h.ns.Get([]byte("migrated-from"))
			if ok != tc.kept || (ok && (string(v) != "0.9@42" || ver != 42)) {
				t.Fatalf("after Migrate: migrated-from = %q @%d (present %v), want present %v as 0.9@42 @42", v, ver, ok, tc.kept)
			}
			n.Close(ctx)
			n.Close(ctx)
			if _, err := n.Apply(ctx, h.ns, setBatch(t, 1, 1)); !errors.Is(err, plugin.ErrClosed) {
				t.Fatalf("Apply after Close: %v", err)
			}
			if _, err := n.Query(ctx, h.ns, []byte{0x80}); !errors.Is(err, plugin.ErrClosed) {
				t.Fatalf("Query after Close: %v", err)
			}
			if _, err := n.Migrate(ctx, h.ns, mig, meta); !errors.Is(err, plugin.ErrClosed) {
				t.Fatalf("Migrate after Close: %v", err)
			}
		})
	}
}

// gate is the KV plugin whose queries wait for release, counting how many
// run at once.
type gate struct {
	kvplugin.KV
	inflight *atomic.Int32
	release  chan struct{}
}

func (g gate) AppendQuery(dst []byte, st sdk.State, q []byte) ([]byte, error) {
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	<-g.release
	return g.KV.AppendQuery(dst, st, q)
}

func (g gate) Query(st sdk.State, q []byte) ([]byte, error) { return g.AppendQuery(nil, st, q) }

// TestNativePool: queries run concurrently on at most size Natives (one
// more waits, and gives up with its context), each gets the right answer,
// and after Close queries fail with ErrClosed.
func TestNativePool(t *testing.T) {
	ctx := context.Background()
	g := gate{inflight: &atomic.Int32{}, release: make(chan struct{})}
	h := newHostTarget(t, plugin.NewNative(sdknative.Code(kvplugin.KV{})))
	h.Apply(setBatch(t, 1, 8))
	view, _ := h.s.View().Namespace("kv")
	p := plugin.NewNativePool(sdknative.Code(g), 2)

	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("key-%012d", i+1)
			res, err := p.Query(ctx, view, kvstore.Query{Op: kvstore.OpGet, Key: []byte(key)}.AppendMsgpack(nil))
			switch {
			case err != nil:
				errs[i] = err
			case !res.OK():
				errs[i] = fmt.Errorf("GET %s: %w", key, res.Err())
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.inflight.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d queries running, want 2", g.inflight.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Query(cctx, view, []byte{0x80}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a query beyond the pool's size with a cancelled context: %v", err)
	}
	if n := g.inflight.Load(); n != 2 {
		t.Fatalf("%d queries running at once on a pool of 2", n)
	}
	close(g.release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
	p.Close(ctx)
	p.Close(ctx)
	if _, err := p.Query(ctx, view, []byte{0x80}); !errors.Is(err, plugin.ErrClosed) {
		t.Fatalf("Query after Close: %v", err)
	}
}

// BenchmarkQuery: a GET of the KV plugin on 4 query runners, as a node
// serves queries: a Pool of trusted wasm instances (the embedded default
// plugin), a NativePool, and a new Native per query (what NativePool saves).
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	kv := sdknative.Code(kvplugin.KV{})
	h := newHostTarget(b, plugin.NewNative(kv))
	h.Apply(setBatch(b, 1, 1024))
	view, _ := h.s.View().Namespace("kv")
	q := kvstore.Query{Op: kvstore.OpGet, Key: []byte("key-000000000512")}.AppendMsgpack(nil)
	check := func(res abi.Result, err error) {
		if err != nil || !res.OK() {
			b.Errorf("GET: %v %v", res, err)
		}
	}
	b.Run("wasm-pool", func(b *testing.B) {
		rt, m := trustedKV(b)
		p := rt.NewPool(m, 4)
		defer p.Close(ctx)
		check(p.Query(ctx, view, q))
		b.ReportAllocs()
		b.ResetTimer() // not the Load (a compilation on a cold cache)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				check(p.Query(ctx, view, q))
			}
		})
	})
	b.Run("native-pool", func(b *testing.B) {
		p := plugin.NewNativePool(kv, 4)
		defer p.Close(ctx)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				check(p.Query(ctx, view, q))
			}
		})
	})
	// One query at a time on one runner, with the CPU time of the thread
	// that runs them (cpu-ns/op): what the engine costs per query, less
	// swayed by other processes on a shared machine than wall time.
	serial := func(b *testing.B, r runner) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		check(r.Query(ctx, view, q))
		b.ReportAllocs()
		b.ResetTimer()
		start := threadCPU()
		for range b.N {
			check(r.Query(ctx, view, q))
		}
		b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
	}
	// wasm-serial-alloc: the same, with the instance's input buffer
	// ignored, so that every query first calls raftkv_alloc (ABI v1.1).
	for _, name := range []string{"wasm-serial", "wasm-serial-alloc"} {
		b.Run(name, func(b *testing.B) {
			rt, m := trustedKV(b)
			in, err := rt.Instantiate(ctx, m)
			if err != nil {
				b.Fatal(err)
			}
			defer in.Close(ctx)
			if name == "wasm-serial-alloc" {
				plugin.NoInputBuffer(in)
			}
			serial(b, in)
		})
	}
	b.Run("native-serial", func(b *testing.B) { serial(b, plugin.NewNative(kv)) })
	b.Run("native-per-query", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				check(plugin.NewNative(kv).Query(ctx, view, q))
			}
		})
	})
}

// trustedKV loads the embedded KV module as a node does (trusted, on the
// tests' shared compile cache), on a runtime closed at b's end.
func trustedKV(b *testing.B) (*plugin.Runtime, *plugin.Module) {
	ctx := context.Background()
	cfg := plugin.DefaultConfig()
	cfg.Trusted = map[string]bool{plugin.HashOf(kvwasm.Module): true}
	cfg.CacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache")
	rt, err := plugin.NewRuntime(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	m, err := rt.Load(ctx, kvwasm.Module, testOpts)
	if err != nil {
		b.Fatal(err)
	}
	return rt, m
}

// TestNativeQuotas: a Native with limits enforces the write quotas as a
// wasm instance does, with the same results.
func TestNativeQuotas(t *testing.T) {
	opts := testOpts
	opts.Limits.MaxWriteBytes = 1000
	opts.Limits.MaxNamespaceKeys = 3
	r := newRuntime(t, 0)
	m, err := r.Load(context.Background(), kvwasm.Module, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	in, err := r.Instantiate(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	native := plugin.NewNative(sdknative.Code(kvplugin.KV{}))
	native.SetLimits(opts.Limits)
	set := func(i uint64, key string, size int) abi.Entry {
		cmd := kvstore.Command{Op: kvstore.OpSet, Key: []byte(key), Value: make([]byte, size)}
		return abi.Entry{Index: i, Term: 1, Data: cmd.AppendMsgpack(nil)}
	}
	es := []abi.Entry{set(1, "a", 10), set(2, "big", 2000), set(3, "b", 10), set(4, "c", 10), set(5, "d", 10), set(6, "a", 20)}
	var got [2][]abi.Result
	for i, r := range []runner{in, native} {
		got[i] = newHostTarget(t, r).Apply(es)
	}
	for i := range es {
		w, n := got[0][i], got[1][i]
		if w.Code != n.Code || string(w.Data) != string(n.Data) {
			t.Errorf("entry %d: wasm %v %q, native %v %q", i+1, w.Code, w.Data, n.Code, n.Data)
		}
	}
	if got[1][1].Code != abi.CodeTooLarge || got[1][4].Code != abi.CodeTooLarge || !got[1][5].OK() {
		t.Fatalf("native results %+v: want too_large for the big value and the 4th key", got[1])
	}
}

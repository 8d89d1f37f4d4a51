package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/plugin/meter"
	"github.com/raftkv/raftkv/host/state"
)

// testCacheDir is the compiled-code cache every test binary shares (see
// internal/cluster).
var testCacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache")

func newRuntime(t testing.TB, timeout time.Duration) *plugin.Runtime {
	t.Helper()
	cfg := plugin.DefaultConfig()
	if timeout > 0 {
		cfg.CallTimeout = timeout
	}
	cfg.MemoryLimitPages = 256
	// The compiled-code cache every test binary shares (see internal/cluster):
	// compiling kv.wasm takes 13-26 s under a plain -race, 2-3 s under make
	// test's RACEFLAGS (wazero's compiler uninstrumented).
	cfg.CacheDir = testCacheDir
	r, err := plugin.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func guest(t testing.TB, r *plugin.Runtime) *plugin.Instance {
	return guestWith(t, r, testOpts)
}

func guestWith(t testing.TB, r *plugin.Runtime, opts plugin.LoadOptions) *plugin.Instance {
	t.Helper()
	ctx := context.Background()
	m, err := r.Load(ctx, buildWasm(t, "./testdata/guest"), opts)
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.Instantiate(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(ctx) })
	return in
}

// batch turns commands into entries with indexes from first on.
func batch(first uint64, cmds ...string) []abi.Entry {
	es := make([]abi.Entry, len(cmds))
	for i, c := range cmds {
		es[i] = abi.Entry{Index: first + uint64(i), Term: 1, Time: 1_700_000_000_000_000_000 + int64(i), Data: []byte(c)}
	}
	return es
}

type applier struct {
	t  *testing.T
	in *plugin.Instance
	s  *state.Store
	ns *state.Namespace
}

func newApplier(t *testing.T, timeout time.Duration) *applier {
	return newApplierWith(t, timeout, testOpts)
}

func newApplierWith(t *testing.T, timeout time.Duration, opts plugin.LoadOptions) *applier {
	r := newRuntime(t, timeout)
	s := state.New()
	return &applier{t: t, in: guestWith(t, r, opts), s: s, ns: s.Namespace("test")}
}

func (a *applier) apply(first uint64, cmds ...string) ([]abi.Result, error) {
	var res []abi.Result
	var err error
	a.s.Update(func() { res, err = a.in.Apply(context.Background(), a.ns, batch(first, cmds...)) })
	return res, err
}

// mustApply applies cmds and returns "code:payload" per entry.
func (a *applier) mustApply(first uint64, cmds ...string) []string {
	a.t.Helper()
	res, err := a.apply(first, cmds...)
	if err != nil {
		a.t.Fatalf("apply %q: %v", cmds, err)
	}
	if len(res) != len(cmds) {
		a.t.Fatalf("apply %q: %d results", cmds, len(res))
	}
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = fmt.Sprintf("%d:%s", r.Code, r.Data)
	}
	return out
}

func (a *applier) query(q string) abi.Result {
	a.t.Helper()
	ns, ok := a.s.View().Namespace("test")
	if !ok {
		a.t.Fatal("namespace missing from view")
	}
	res, err := a.in.Query(context.Background(), ns, []byte(q))
	if err != nil {
		a.t.Fatalf("query %q: %v", q, err)
	}
	return res
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("results\n got %q\nwant %q", got, want)
	}
}

func TestApplyAndQuery(t *testing.T) {
	a := newApplier(t, 5*time.Second)
	expect(t, a.mustApply(10, "set a 1", "set b 2", "get a", "set a 3", "get a", "del b", "get b", "now"),
		"0:ok", "0:ok", "0:1@10", "0:ok", "0:3@13", "0:1", "2:not found", "0:17/1700000000000000007")
	if r := a.query("get a"); r.Code != abi.CodeOK || string(r.Data) != "3@13" {
		t.Fatalf("query get a = %v %q", r.Code, r.Data)
	}
	a.mustApply(20, "set p/1 x", "set p/2 y", "set q z")
	if r := a.query("scan p/"); string(r.Data) != "p/1=x@20,p/2=y@21" {
		t.Fatalf("scan = %q", r.Data)
	}
	if r := a.query("set c 1"); r.Code != abi.CodeInternal || !strings.Contains(string(r.Data), fmt.Sprint(abi.RcReadOnly)) {
		t.Fatalf("write in query: %v %q", r.Code, r.Data)
	}
}

// TestEntryAtomicity: an entry that errors after writing leaves nothing behind,
// and later entries of the batch see earlier entries' writes.
func TestEntryAtomicity(t *testing.T) {
	a := newApplier(t, 5*time.Second)
	expect(t, a.mustApply(1, "set k v1", "set2fail k v2", "get k", "get k'"),
		"0:ok", "3:refused after writing", "0:v1@1", "2:not found")
}

func TestTrapMidBatch(t *testing.T) {
	a := newApplier(t, 5*time.Second)
	got := a.mustApply(1, "set a 1", "setpanic a 2", "get a", "oob", "set b 2", "get b")
	want := []string{"0:ok", "6:wasm error: unreachable: panic: boom after set", "0:1@1", "", "0:ok", "0:2@5"}
	for i := range want {
		if i == 3 {
			if !strings.HasPrefix(got[3], "6:state_set key: range [4294967280") {
				t.Fatalf("oob result %q", got[3])
			}
			continue
		}
		if got[i] != want[i] {
			t.Fatalf("entry %d: got %q want %q", i, got[i], want[i])
		}
	}
}

func TestHostileCommands(t *testing.T) {
	a := newApplier(t, 0) // bounded by fuel and the memory cap, not by the wall clock
	got := a.mustApply(1, "oom", "set after oom", "hugekey", "hugeresult", "set x y", "noresult")
	if !strings.HasPrefix(got[0], "6:wasm error: unreachable: runtime: out of memory") {
		t.Fatalf("memory bomb: %q", got[0])
	}
	expect(t, got[1:], "0:ok", fmt.Sprintf("0:%d", abi.RcTooLarge),
		fmt.Sprintf("4:result of %d bytes exceeds the %d-byte limit", 1<<31, abi.MaxResultSize),
		"0:ok", "7:plugin returned without reporting a result")
	if p := a.in.MemoryPages(); p > 256 {
		t.Fatalf("memory %d pages exceeds the limit", p)
	}
}

// slowGet simulates a host bug: reading the key "slow" takes seconds.
func slowGet(r plugin.ReadStore, key []byte) ([]byte, uint64, bool) {
	if string(key) == "slow" {
		time.Sleep(3 * time.Second)
	}
	return r.Get(key)
}

type slowStore struct{ plugin.Store }

func (s slowStore) Get(key []byte) ([]byte, uint64, bool) { return slowGet(s.Store, key) }

type slowView struct{ plugin.ReadStore }

func (s slowView) Get(key []byte) ([]byte, uint64, bool) { return slowGet(s.ReadStore, key) }

// TestTimeLimitIsFatalButRecoverable: the wall-clock limit, the last resort
// against host bugs (here a store that takes seconds to answer), stops the
// call: an error, not a result, and the runtime serves the next call. The
// budgets of 1,000,000 fuel keep a metered call's limit at 1 s (FuelTime).
func TestTimeLimitIsFatalButRecoverable(t *testing.T) {
	opts := testOpts
	opts.Limits.ApplyFuel, opts.Limits.QueryFuel = 1_000_000, 1_000_000
	a := newApplierWith(t, time.Second, opts) // > the initialiser under the race detector, < slowGet
	var res []abi.Result
	var err error
	a.s.Update(func() {
		res, err = a.in.Apply(context.Background(), slowStore{a.ns}, batch(1, "set a 1", "get slow", "set b 2"))
	})
	if !errors.Is(err, plugin.ErrTimeLimit) {
		t.Fatalf("err = %v, want ErrTimeLimit", err)
	}
	if len(res) != 1 || res[0].Code != abi.CodeOK {
		t.Fatalf("results before the slow entry: %+v", res)
	}
	// The slow entry's writes are undone; the runtime serves the next call.
	expect(t, a.mustApply(3, "get a", "set c 3", "get c"), "0:1@1", "0:ok", "0:3@4")
	ns, _ := a.s.View().Namespace("test")
	if _, err := a.in.Query(context.Background(), slowView{ns}, []byte("get slow")); !errors.Is(err, plugin.ErrTimeLimit) {
		t.Fatalf("slow query: %v", err)
	}
	if r := a.query("get c"); string(r.Data) != "3@4" {
		t.Fatalf("after the slow query: %q", r.Data)
	}
}

func TestMigrate(t *testing.T) {
	a := newApplier(t, 5*time.Second)
	ctx := context.Background()
	meta := abi.Entry{Index: 7, Term: 2}
	var res abi.Result
	var err error
	a.s.Update(func() { res, err = a.in.Migrate(ctx, a.ns, abi.Migration{Index: 7}, meta) })
	if err != nil || !res.OK() {
		t.Fatalf("migrate: %v %v", res, err)
	}
	if v, ver, ok := a.ns.Get([]byte("migrated")); !ok || string(v) != "yes" || ver != 7 {
		t.Fatalf("migration write: %q %d %v", v, ver, ok)
	}
	a.mustApply(8, "set fail-migration yes")
	a.s.Update(func() {
		a.ns.Delete([]byte("migrated"))
		res, err = a.in.Migrate(ctx, a.ns, abi.Migration{Index: 9}, abi.Entry{Index: 9})
	})
	if err != nil || res.Code != abi.CodeInternal {
		t.Fatalf("failing migrate: %v %v", res, err)
	}
	if _, _, ok := a.ns.Get([]byte("migrated")); ok {
		t.Fatal("failed migration left a write")
	}
}

func TestInvalidModules(t *testing.T) {
	r := newRuntime(t, time.Second)
	ctx := context.Background()
	valid := buildWasm(t, "./testdata/guest")
	metered, err := meter.Instrument(valid, meter.Options{Fuel: true})
	if err != nil {
		t.Fatal(err)
	}
	// A module whose only function uses an atomic instruction (threads).
	threads := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type () -> ()
		"\x03\x02\x01\x00" + // one function
		"\x0a\x07\x01\x05\x00\xfe\x03\x00\x0b") // atomic.fence; end
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("#!/bin/sh\necho hi\n"), "not a WebAssembly binary"},
		{"truncated", valid[:len(valid)/2], "does not compile"},
		{"too large", make([]byte, abi.MaxModuleSize+1), "the limit is"},
		{"wrong abi", buildWasm(t, "./testdata/badabi"), "targets raftkv ABI v2; this host supports v1"},
		{"missing export", buildWasm(t, "./testdata/noquery"), "does not export raftkv_query"},
		{"unknown import", buildWasm(t, "./testdata/badimport"), "imports env.launch_missiles"},
		{"reserved export", metered, `exports "raftkv_fuel", a name reserved for the host`},
		{"unknown opcode", threads, "opcode 0xFE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Load(ctx, c.wasm, testOpts)
			if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v; want ErrInvalidModule containing %q", err, c.want)
			}
		})
	}
}

func TestPoolConcurrentQueries(t *testing.T) {
	r := newRuntime(t, 5*time.Second)
	ctx := context.Background()
	m, err := r.Load(ctx, buildWasm(t, "./testdata/guest"), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	s := state.New()
	s.Update(func() { s.Namespace("test").Set([]byte("k"), []byte("v"), 1) })
	p := r.NewPool(m, 3)
	defer p.Close(ctx)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 20 {
				ns, _ := s.View().Namespace("test")
				res, err := p.Query(ctx, ns, []byte("get k"))
				if err == nil && string(res.Data) != "v@1" {
					err = fmt.Errorf("got %q", res.Data)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

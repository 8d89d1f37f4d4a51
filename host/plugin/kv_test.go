package plugin_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/internal/fsmtest"
	"github.com/raftkv/raftkv/internal/kvmodel"
	"github.com/raftkv/raftkv/internal/sdknative"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// runner is what Instance and Native have in common.
type runner interface {
	Apply(ctx context.Context, st plugin.Store, entries []abi.Entry) ([]abi.Result, error)
	Query(ctx context.Context, st plugin.ReadStore, q []byte) (abi.Result, error)
}

// hostTarget runs a plugin against the real host store, as the FSM does.
type hostTarget struct {
	t  testing.TB
	r  runner
	s  *state.Store
	ns *state.Namespace
}

func newHostTarget(t testing.TB, r runner) *hostTarget {
	s := state.New()
	var ns *state.Namespace
	s.Update(func() { ns = s.Namespace("kv") })
	return &hostTarget{t: t, r: r, s: s, ns: ns}
}

func (h *hostTarget) Apply(entries []abi.Entry) []abi.Result {
	var res []abi.Result
	var err error
	h.s.Update(func() { res, err = h.r.Apply(context.Background(), h.ns, entries) })
	if err != nil {
		h.t.Fatalf("apply: %v", err)
	}
	return res
}

func (h *hostTarget) Query(q []byte) abi.Result {
	view, _ := h.s.View().Namespace("kv")
	res, err := h.r.Query(context.Background(), view, q)
	if err != nil {
		h.t.Fatalf("query: %v", err)
	}
	return res
}

func (h *hostTarget) Dump() []abi.Record {
	var out []abi.Record
	h.ns.Scan(nil, nil, 0, func(k, v []byte, ver uint64) bool {
		out = append(out, abi.Record{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...), Version: ver})
		return true
	})
	return out
}

func kvInstance(t testing.TB, r *plugin.Runtime) *plugin.Instance {
	t.Helper()
	return kvInstanceWith(t, r, testOpts)
}

func kvInstanceWith(t testing.TB, r *plugin.Runtime, opts plugin.LoadOptions) *plugin.Instance {
	t.Helper()
	ctx := context.Background()
	m, err := r.Load(ctx, kvwasm.Module, opts)
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

// TestKVModel: seeded random operation sequences give identical results and
// identical state on the reference model, the wasm KV plugin and the same
// plugin code run natively.
func TestKVModel(t *testing.T) {
	r := newRuntime(t, 0)
	m, err := r.Load(context.Background(), kvwasm.Module, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Name != "kv" || m.Info.Version != "1.0.0" || m.HasMigrate { // kv has no migration (raftkv_info says so)
		t.Fatalf("kv module: info %+v, migrate %v", m.Info, m.HasMigrate)
	}
	seeds := []int64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("wasm/seed=%d", seed), func(t *testing.T) {
			in := kvInstance(t, r)
			fsmtest.Compare(t, seed, 3000, kvmodel.New(), newHostTarget(t, in))
			t.Logf("counters %+v", in.Module().Counters())
		})
		t.Run(fmt.Sprintf("native/seed=%d", seed), func(t *testing.T) {
			fsmtest.Compare(t, seed, 3000, kvmodel.New(), newHostTarget(t, plugin.NewNative(sdknative.Code(kvplugin.KV{}))))
		})
	}
}

// setBatch returns n SET entries with 16-byte keys and 100-byte values,
// encoded canonically as the HTTP API and the CLI encode them.
func setBatch(tb testing.TB, first uint64, n int) []abi.Entry {
	es := make([]abi.Entry, n)
	val := make([]byte, 100)
	for i := range es {
		key := []byte(fmt.Sprintf("key-%012d", first+uint64(i)))
		cmd := kvstore.Command{Op: kvstore.OpSet, Key: key, Value: val}.AppendMsgpack(nil)
		es[i] = abi.Entry{Index: first + uint64(i), Term: 1, Time: int64(first) + int64(i), Data: cmd}
	}
	return es
}

// BenchmarkApply measures the apply path: SET commands (new 16-byte keys,
// 100-byte values) in batches, through the wasm KV plugin and through the
// same kvstore code run natively, against the real host store. "wasm" is
// metered, as every deployed module; "wasm-unmetered" is the same module
// with the same termination checks but no fuel, as deployed modules ran
// before metering: their ratio is what metering costs. "wasm-trusted" runs
// as the embedded default plugin does; "wasm-trusted-alloc" is the same with
// its input buffer ignored (every batch through raftkv_alloc, as before ABI
// v1.2). cpu-ns/cmd is the benchmark thread's CPU time.
func BenchmarkApply(b *testing.B) {
	for _, impl := range []string{"wasm", "wasm-unmetered", "wasm-trusted", "wasm-trusted-alloc", "native"} {
		for _, size := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/batch=%d", impl, size), func(b *testing.B) {
				var r runner = plugin.NewNative(sdknative.Code(kvplugin.KV{}))
				var in *plugin.Instance
				switch impl {
				case "wasm": // with termination checks and fuel, as any deployed module
					in = kvInstance(b, newRuntime(b, 0))
					r = in
				case "wasm-unmetered":
					rt := newRuntime(b, 0)
					plugin.Unmetered(rt)
					in = kvInstance(b, rt)
					r = in
				case "wasm-trusted", "wasm-trusted-alloc": // as the embedded default plugin runs
					cfg := plugin.DefaultConfig()
					cfg.Trusted = map[string]bool{plugin.HashOf(kvwasm.Module): true}
					rt, err := plugin.NewRuntime(context.Background(), cfg)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { rt.Close(context.Background()) })
					in = kvInstance(b, rt)
					r = in
					if impl == "wasm-trusted-alloc" {
						// Every batch through raftkv_alloc, as before ABI
						// v1.2: what the input buffer saves.
						plugin.NoInputBuffer(in)
					}
				}
				h := newHostTarget(b, r)
				const pool = 1 << 16 // distinct keys, reused across iterations
				batches := make([][]abi.Entry, pool/size+1)
				for i := range batches {
					batches[i] = setBatch(b, uint64(i*size+1), size)
				}
				runtime.LockOSThread() // for the thread's CPU time
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.ResetTimer()
				cpu := threadCPU()
				for i := 0; i < b.N; i++ {
					res := h.Apply(batches[i%len(batches)])
					if !res[0].OK() {
						b.Fatal(res[0].Err())
					}
				}
				cpu = threadCPU() - cpu
				b.StopTimer()
				b.ReportMetric(float64(cpu)/float64(b.N*size), "cpu-ns/cmd")
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "cmds/s")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/cmd")
				if in != nil {
					b.ReportMetric(float64(in.MemoryPages()), "guest-pages")
				}
			})
		}
	}
}

// TestKVFuel: a KV SET uses a few thousand units of fuel (ABI.md), and no
// entry comes near the default budget, garbage collections included.
func TestKVFuel(t *testing.T) {
	in := kvInstance(t, newRuntime(t, 0))
	h := newHostTarget(t, in)
	const n = 20 * 64
	for i := range n / 64 {
		h.Apply(setBatch(t, uint64(1+i*64), 64))
	}
	c := in.Module().Counters()
	if avg := c.FuelUsed / n; avg < 1000 || avg >= 10000 {
		t.Errorf("a SET uses %d fuel on average, not a few thousand", avg)
	}
	if budget := plugin.DefaultLimits().ApplyFuel; c.MaxFuelUsed > budget/20 {
		t.Errorf("an entry used %d fuel, over 5%% of the default budget %d", c.MaxFuelUsed, budget)
	}
	t.Logf("%d SETs: %d fuel on average, %d at most", n, c.FuelUsed/n, c.MaxFuelUsed)
}

// BenchmarkMetering measures what metering costs on the apply path: the same
// SET batches applied in turn by the metered KV module, the same module
// unmetered (no fuel, no call-stack budget) and deployed trusted
// (Limits.Trusted: no fuel, the call-stack budget kept), all three with the
// termination checks of deployed modules, timed in CPU time of the
// applying thread, so that load from other processes changes them alike.
// It reports each one's CPU ns per command and the overhead of metering
// over the unmetered module in percent.
func BenchmarkMetering(b *testing.B) {
	for _, size := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			unmetered := newRuntime(b, 0)
			plugin.Unmetered(unmetered)
			trusted := testOpts
			trusted.Limits.Trusted = true
			targets := []*hostTarget{newHostTarget(b, kvInstance(b, newRuntime(b, 0))), newHostTarget(b, kvInstance(b, unmetered)),
				newHostTarget(b, kvInstanceWith(b, newRuntime(b, 0), trusted))}
			batches := make([][]abi.Entry, (1<<16)/size+1)
			for i := range batches {
				batches[i] = setBatch(b, uint64(i*size+1), size)
			}
			var cpu [3]int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j, h := range targets {
					start := threadCPU()
					res := h.Apply(batches[i%len(batches)])
					cpu[j] += threadCPU() - start
					if !res[0].OK() {
						b.Fatal(res[0].Err())
					}
				}
			}
			n := float64(b.N * size)
			b.ReportMetric(float64(cpu[0])/n, "metered-cpu-ns/cmd")
			b.ReportMetric(float64(cpu[1])/n, "unmetered-cpu-ns/cmd")
			b.ReportMetric(float64(cpu[2])/n, "trusted-cpu-ns/cmd")
			b.ReportMetric(100*(float64(cpu[0])/float64(cpu[1])-1), "overhead-%")
		})
	}
}

// TestGuestMemoryFlat applies 1,000,000 SETs in batches of 512 (200,000
// under the race detector) and checks that guest memory stops growing after
// warm-up.
func TestGuestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 applies; run without -short")
	}
	in := kvInstance(t, newRuntime(t, 0))
	h := newHostTarget(t, in)
	batches := make([][]abi.Entry, 64)
	for i := range batches {
		batches[i] = setBatch(t, uint64(i*512+1), 512)
	}
	var warm uint32
	total := 1_000_000 / 512
	if raceEnabled { // the same property, in a fifth of the time
		total /= 5
	}
	for i := 0; i < total; i++ {
		h.Apply(batches[i%len(batches)])
		if i == total/10 {
			warm = in.MemoryPages()
		}
	}
	end := in.MemoryPages()
	t.Logf("guest memory: %d pages after warm-up, %d pages after %d applies", warm, end, total*512)
	if end > warm {
		t.Fatalf("guest memory grew from %d to %d pages after warm-up", warm, end)
	}
}

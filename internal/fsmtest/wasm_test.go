package fsmtest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/internal/fsmtest"
	"github.com/raftkv/raftkv/internal/kvmodel"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
	"github.com/raftkv/raftkv/plugins/sdk"
	"github.com/raftkv/raftkv/plugins/sdk/mp"
)

// abiHost is a small, plain implementation of the host side of ABI.md, enough
// to run the embedded kv.wasm through the SDK's wasm code in these tests (the
// real runtime is host/plugin's). It follows the ABI literally: a sorted
// store with versions, per-entry journaling undone on a non-zero result,
// read-only queries, and the negative return codes.
type abiHost struct {
	t   testing.TB
	mod api.Module

	data    map[string]rec
	journal []undoRec
	query   bool
	entries []abi.Entry // of the running batch
	next    int         // entries[next] is the current one
	results []abi.Result
	stderr  bytes.Buffer // the guest's, shown when it traps

	// discard makes writes and results no-ops (counted in discarded), to
	// measure the guest and the calls alone.
	discard   bool
	discarded int
}

type rec struct {
	value   []byte
	version uint64
}

type undoRec struct {
	key     string
	old     rec
	existed bool
}

var (
	compileOnce sync.Once
	compiled    wazero.CompiledModule
	wasmRuntime wazero.Runtime
	current     *abiHost // the host whose module is being called (tests run it one at a time)
	compileErr  error
)

// newABIHost instantiates kv.wasm on a fresh host. The module is compiled once
// per test binary.
func newABIHost(t testing.TB) *abiHost {
	t.Helper()
	ctx := context.Background()
	compileOnce.Do(func() {
		wasmRuntime = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(256))
		wasi_snapshot_preview1.MustInstantiate(ctx, wasmRuntime)
		if _, compileErr = hostModule(wasmRuntime).Instantiate(ctx); compileErr != nil {
			return
		}
		module := kvwasm.Module
		if path := os.Getenv("FSMTEST_WASM"); path != "" { // test another build of the KV plugin
			if module, compileErr = os.ReadFile(path); compileErr != nil {
				return
			}
		}
		compiled, compileErr = wasmRuntime.CompileModule(ctx, module)
	})
	if compileErr != nil {
		t.Fatal(compileErr)
	}
	h := &abiHost{t: t, data: map[string]rec{}}
	current = h
	mod, err := wasmRuntime.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName("").
		WithStartFunctions(abi.ExportInitialize).WithStderr(&h.stderr))
	if err != nil {
		t.Fatal(err)
	}
	h.mod = mod
	t.Cleanup(func() { mod.Close(ctx) })
	return h
}

func hostModule(r wazero.Runtime) wazero.HostModuleBuilder {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := r.NewHostModuleBuilder(abi.ImportModule)
	fn := func(name string, params, results []api.ValueType, f func(h *abiHost, m api.Module, s []uint64)) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
			f(current, m, s)
		}), params, results).Export(name)
	}
	fn(abi.FnStateGet, []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i64}, (*abiHost).stateGet)
	fn(abi.FnStateSet, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, (*abiHost).stateSet)
	fn(abi.FnStateDelete, []api.ValueType{i32, i32}, []api.ValueType{i32}, (*abiHost).stateDelete)
	fn(abi.FnStateScan, []api.ValueType{i32, i32, i32, i32, i32, i32, i32}, []api.ValueType{i64}, (*abiHost).stateScan)
	fn(abi.FnResult, []api.ValueType{i32, i32, i32}, nil, (*abiHost).result)
	fn(abi.FnLog, []api.ValueType{i32, i32, i32}, nil, func(h *abiHost, m api.Module, s []uint64) {
		h.t.Logf("plugin log level %d: %s", uint32(s[0]), h.read(m, s[1], s[2]))
	})
	entryField := func(f func(e abi.Entry) int64) func(h *abiHost, m api.Module, s []uint64) {
		return func(h *abiHost, m api.Module, s []uint64) {
			if h.query || h.next >= len(h.entries) {
				s[0] = 0
				return
			}
			s[0] = uint64(f(h.entries[h.next]))
		}
	}
	fn(abi.FnEntryIndex, nil, []api.ValueType{i64}, entryField(func(e abi.Entry) int64 { return int64(e.Index) }))
	fn(abi.FnEntryTerm, nil, []api.ValueType{i64}, entryField(func(e abi.Entry) int64 { return int64(e.Term) }))
	fn(abi.FnEntryTime, nil, []api.ValueType{i64}, entryField(func(e abi.Entry) int64 { return e.Time }))
	return b
}

func (h *abiHost) read(m api.Module, ptr, n uint64) []byte {
	b, ok := m.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		h.t.Fatalf("guest passed [%d, +%d) outside its memory", uint32(ptr), uint32(n))
	}
	return b
}

func (h *abiHost) write(m api.Module, ptr uint64, b []byte) {
	if !m.Memory().Write(uint32(ptr), b) {
		h.t.Fatalf("guest buffer at %d (+%d) outside its memory", uint32(ptr), len(b))
	}
}

func (h *abiHost) stateGet(m api.Module, s []uint64) {
	r, ok := h.data[string(h.read(m, s[0], s[1]))]
	if !ok {
		s[0] = uint64(1<<64 - 1) // -1
		return
	}
	if uint32(len(r.value)) <= uint32(s[3]) {
		h.write(m, s[2], r.value)
	}
	if uint32(s[4]) != 0 {
		if !m.Memory().WriteUint64Le(uint32(s[4]), r.version) {
			h.t.Fatal("bad version pointer")
		}
	}
	s[0] = uint64(len(r.value))
}

// writable returns 0 or the negative code for a write now.
func (h *abiHost) writable() int32 {
	if h.query {
		return abi.RcReadOnly
	}
	if h.next >= len(h.entries) {
		return abi.RcNoEntry
	}
	return 0
}

func (h *abiHost) stateSet(m api.Module, s []uint64) {
	if h.discard {
		s[0] = 0
		return
	}
	key, value := h.read(m, s[0], s[1]), h.read(m, s[2], s[3])
	rc := h.writable()
	switch {
	case rc != 0:
	case len(key) == 0:
		rc = abi.RcBadArg
	case len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize:
		rc = abi.RcTooLarge
	default:
		h.remember(string(key))
		h.data[string(key)] = rec{value: bytes.Clone(value), version: h.entries[h.next].Index}
	}
	s[0] = uint64(uint32(rc))
}

func (h *abiHost) stateDelete(m api.Module, s []uint64) {
	key := string(h.read(m, s[0], s[1]))
	rc := h.writable()
	switch {
	case rc != 0:
	case key == "":
		rc = abi.RcBadArg
	default:
		if _, ok := h.data[key]; ok {
			h.remember(key)
			delete(h.data, key)
			rc = 1
		}
	}
	s[0] = uint64(uint32(rc))
}

func (h *abiHost) remember(key string) {
	old, existed := h.data[key]
	h.journal = append(h.journal, undoRec{key, old, existed})
}

func (h *abiHost) stateScan(m api.Module, s []uint64) {
	start, end := h.read(m, s[0], s[1]), h.read(m, s[2], s[3])
	limit := int(int32(uint32(s[4])))
	if limit < 1 || limit > abi.MaxScanLimit {
		s[0] = uint64(1<<64 + abi.RcBadArg) // negative i64
		return
	}
	var keys []string
	for k := range h.data {
		if k >= string(start) && (len(end) == 0 || k < string(end)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	keys = keys[:min(limit, len(keys))]
	out := mp.AppendArrayHeader(nil, len(keys))
	for _, k := range keys {
		out = mp.AppendArrayHeader(out, 3)
		out = mp.AppendBytes(out, []byte(k))
		out = mp.AppendBytes(out, h.data[k].value)
		out = mp.AppendUint(out, h.data[k].version)
	}
	if uint32(len(out)) <= uint32(s[6]) {
		h.write(m, s[5], out)
	}
	s[0] = uint64(len(out))
}

func (h *abiHost) result(m api.Module, s []uint64) {
	code := abi.Code(uint32(s[0]))
	if h.discard {
		if code != abi.CodeOK {
			h.t.Fatalf("result %v: %s", code, h.read(m, s[1], s[2]))
		}
		h.discarded++
		return
	}
	r := abi.Result{Code: code, Data: bytes.Clone(h.read(m, s[1], s[2]))}
	h.results = append(h.results, r)
	if h.query {
		return
	}
	if h.next >= len(h.entries) {
		h.t.Fatalf("result call after the last entry")
	}
	if code != abi.CodeOK {
		for i := len(h.journal) - 1; i >= 0; i-- {
			u := h.journal[i]
			if u.existed {
				h.data[u.key] = u.old
			} else {
				delete(h.data, u.key)
			}
		}
	}
	h.journal = h.journal[:0]
	h.next++
}

// call writes input into the guest's buffer and calls export with it.
func (h *abiHost) call(export string, input []byte) {
	ctx := context.Background()
	res, err := h.mod.ExportedFunction(abi.ExportAlloc).Call(ctx, uint64(len(input)))
	if err != nil {
		h.t.Fatalf("%s trapped: %v\nguest stderr:\n%s", abi.ExportAlloc, err, h.stderr.Bytes())
	}
	h.write(h.mod, res[0], input)
	if _, err := h.mod.ExportedFunction(export).Call(ctx, res[0], uint64(len(input))); err != nil {
		h.t.Fatalf("%s trapped: %v\nguest stderr:\n%s", export, err, h.stderr.Bytes())
	}
}

// encodings alternates between the host encoder's default (fixed-width
// integers) and the compact form, so both decoders of the SDK run.
var encodings int

// maxBatchBytes bounds the command bytes of one raftkv_apply call: the guest
// holds the whole batch in one buffer of its small memory, so a host must
// split batches of large commands (see sdk.MaxBatchBytes).
const maxBatchBytes = sdk.MaxBatchBytes - 64<<10

func (h *abiHost) Apply(entries []abi.Entry) []abi.Result {
	var results []abi.Result
	for len(entries) > 0 {
		n, size := 1, len(entries[0].Data)
		for n < len(entries) && size+len(entries[n].Data) <= maxBatchBytes {
			size += len(entries[n].Data)
			n++
		}
		results = append(results, h.applyBatch(entries[:n])...)
		entries = entries[n:]
	}
	return results
}

func (h *abiHost) applyBatch(entries []abi.Entry) []abi.Result {
	var batch []byte
	if encodings++; encodings%2 == 0 {
		var err error
		if batch, err = msgpack.Marshal(abi.Batch(entries)); err != nil {
			h.t.Fatal(err)
		}
	} else {
		batch = mp.AppendArrayHeader(nil, len(entries))
		for _, e := range entries {
			batch = mp.AppendArrayHeader(batch, 4)
			batch = mp.AppendUint(batch, e.Index)
			batch = mp.AppendUint(batch, e.Term)
			batch = mp.AppendInt(batch, e.Time)
			batch = mp.AppendBytes(batch, e.Data)
		}
	}
	h.entries, h.next, h.results, h.query = entries, 0, nil, false
	h.call(abi.ExportApply, batch)
	if len(h.results) != len(entries) {
		h.t.Fatalf("%d results for %d entries", len(h.results), len(entries))
	}
	return h.results
}

func (h *abiHost) Query(q []byte) abi.Result {
	h.entries, h.next, h.results, h.query = nil, 0, nil, true
	h.call(abi.ExportQuery, q)
	h.query = false
	if len(h.results) != 1 {
		h.t.Fatalf("%d results for a query", len(h.results))
	}
	return h.results[0]
}

func (h *abiHost) Dump() []abi.Record {
	keys := make([]string, 0, len(h.data))
	for k := range h.data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]abi.Record, len(keys))
	for i, k := range keys {
		out[i] = abi.Record{Key: []byte(k), Value: h.data[k].value, Version: h.data[k].version}
	}
	return out
}

func (h *abiHost) memoryPages() uint32 { return h.mod.Memory().Size() / 65536 }

// TestWasmMatchesModel runs the embedded kv.wasm, through the SDK's wasm
// shims, against the model.
func TestWasmMatchesModel(t *testing.T) {
	n := 3000
	if testing.Short() || raceEnabled {
		n = 800
	}
	for _, seed := range []int64{5, 6} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fsmtest.Compare(t, seed, n, kvmodel.New(), newABIHost(t))
		})
	}
}

func TestWasmInfoAndMigrate(t *testing.T) {
	h := newABIHost(t)
	h.query = true
	if _, err := h.mod.ExportedFunction(abi.ExportInfo).Call(context.Background()); err != nil {
		t.Fatal(err)
	}
	var info abi.Info
	if len(h.results) != 1 || h.results[0].Code != abi.CodeOK {
		t.Fatalf("info results %v", h.results)
	}
	if err := abi.Unmarshal(h.results[0].Data, &info); err != nil || info.Name != "kv" || info.Version != "1.0.0" {
		t.Fatalf("info %+v, %v", info, err)
	}
	for _, name := range []string{abi.ExportMarker, abi.ExportAlloc, abi.ExportApply, abi.ExportQuery, abi.ExportMigrate, abi.ExportInfo, abi.ExportInitialize} {
		if h.mod.ExportedFunction(name) == nil {
			t.Errorf("kv.wasm does not export %s", name)
		}
	}
	// kv has no Migrator: an upgrade is accepted without changes.
	in, _ := abi.Marshal(abi.Migration{FromHash: "00", FromVersion: "0.9", Index: 7})
	h.entries, h.next, h.results, h.query = []abi.Entry{{Index: 7}}, 0, nil, false
	h.call(abi.ExportMigrate, in)
	if len(h.results) != 1 || h.results[0].Code != abi.CodeOK {
		t.Fatalf("migrate results %v", h.results)
	}
}

// TestWasmMemoryFlat applies a million commands of the generated mix and
// checks that the guest's memory stops growing: the SDK's buffers are
// reused and garbage is collected between calls.
func TestWasmMemoryFlat(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a million commands: long, and about the guest, which the race detector does not see")
	}
	h := newABIHost(t)
	ops := fsmtest.Ops(11, 4096)
	// Keep the state small: the big generated values would dominate.
	for i, op := range ops {
		if bytes.Contains(op, []byte("big/")) {
			ops[i] = kvSet(fmt.Sprintf("k%d", i), "v")
		}
	}
	index := uint64(1)
	run := func(batches int) {
		for b := 0; b < batches; b++ {
			entries := make([]abi.Entry, 512)
			for i := range entries {
				entries[i] = abi.Entry{Index: index, Term: 1, Data: ops[int(index)%len(ops)]}
				index++
			}
			h.Apply(entries)
			if f := h.mod.ExportedFunction("debug_stats"); f != nil && b%50 == 0 {
				f.Call(context.Background())
				t.Logf("pages %d: %s", h.memoryPages(), h.stderr.String())
				h.stderr.Reset()
			}
			if b%16 == 0 {
				h.Query([]byte("\x82\xa2op\xa4LIST\xa5limit\xcd\x01\x00"))
				h.Query([]byte("\x82\xa2op\xa3GET\xa3key\xa3a/1"))
			}
		}
	}
	run(200)
	warm := h.memoryPages()
	run(2000) // ~1M commands
	if after := h.memoryPages(); after > warm+16 {
		t.Fatalf("guest memory grew from %d to %d pages over 1M commands", warm, after)
	} else {
		t.Logf("guest memory %d pages after warm-up, %d after 1M more commands", warm, after)
	}
}

func kvSet(key, value string) []byte {
	b, _ := msgpack.Marshal(map[string]string{"op": "SET", "key": key, "value": value})
	return b
}

// BenchmarkWasmApplySet runs batches of 512 SET commands (16-byte keys,
// 100-byte values, msgpack/v5's batch encoding) through kv.wasm: with this
// file's test host (a Go map, journaling, results kept), and with a host whose
// state_set and result do nothing, which measures the guest (SDK and plugin)
// and wazero's calls alone.
func BenchmarkWasmApplySet(b *testing.B) {
	for _, discard := range []bool{false, true} {
		name := "host=map"
		if discard {
			name = "host=nop"
		}
		b.Run(name, func(b *testing.B) { benchWasmApplySet(b, discard) })
	}
}

func benchWasmApplySet(b *testing.B, discard bool) {
	h := newABIHost(b)
	h.discard = discard
	const batchSize = 512
	batches := make([][]byte, 64)
	lists := make([]abi.Batch, len(batches))
	index := uint64(1)
	for i := range batches {
		entries := make(abi.Batch, batchSize)
		for j := range entries {
			key := fmt.Appendf(nil, "key-%012d", (i*batchSize+j)%20000)
			c := kvstore.Command{Op: kvstore.OpSet, Key: key, Value: make([]byte, 100)}
			entries[j] = abi.Entry{Index: index, Term: 1, Time: 1_700_000_000_000_000_000, Data: c.AppendMsgpack(nil)}
			index++
		}
		lists[i] = entries
		var err error
		if batches[i], err = msgpack.Marshal(entries); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	alloc, apply := h.mod.ExportedFunction(abi.ExportAlloc), h.mod.ExportedFunction(abi.ExportApply)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := batches[i%len(batches)]
		h.entries, h.next, h.results, h.query, h.discarded = lists[i%len(batches)], 0, h.results[:0], false, 0
		res, err := alloc.Call(ctx, uint64(len(batch)))
		if err != nil {
			b.Fatal(err)
		}
		h.mod.Memory().Write(uint32(res[0]), batch)
		if _, err := apply.Call(ctx, res[0], uint64(len(batch))); err != nil {
			b.Fatal(err)
		}
		if len(h.results)+h.discarded != batchSize {
			b.Fatalf("%d results", len(h.results)+h.discarded)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "cmds/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/cmd")
}

package meter_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/raftkv/raftkv/host/plugin/meter"
)

// A small WebAssembly encoder for the tests: enough to write functions in
// the binary format by hand (the WAT text of each test is in its comments).

const (
	i32 = 0x7F
	i64 = 0x7E
)

type fn struct {
	params, results []byte
	locals          []byte // one valtype per local
	body            []byte // the expression, without its final end
}

// mod encodes a module with the functions (exported as f0, f1, ...), one
// memory of minPages (maxPages < 0: no maximum) exported as "memory".
type mod struct {
	funcs              []fn
	minPages, maxPages int
	tables             []byte // the table section's body, if any
}

func u32(v uint32) []byte { return binary.AppendUvarint(nil, uint64(v)) }

func s64(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func vec(items ...[]byte) []byte {
	b := u32(uint32(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func sec(id byte, body []byte) []byte {
	return append(append([]byte{id}, u32(uint32(len(body)))...), body...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func (m mod) bytes() []byte {
	var types, funcs, exports, codes [][]byte
	for i, f := range m.funcs {
		types = append(types, cat([]byte{0x60}, vec(bytesOf(f.params)...), vec(bytesOf(f.results)...)))
		funcs = append(funcs, u32(uint32(i)))
		name := "f" + string(rune('0'+i))
		exports = append(exports, cat(u32(uint32(len(name))), []byte(name), []byte{0x00}, u32(uint32(i))))
		var locals [][]byte
		for _, l := range f.locals {
			locals = append(locals, []byte{1, l})
		}
		code := cat(vec(locals...), f.body, []byte{0x0B})
		codes = append(codes, cat(u32(uint32(len(code))), code))
	}
	exports = append(exports, cat(u32(6), []byte("memory"), []byte{0x02, 0x00}))
	mem := cat([]byte{0x00}, u32(uint32(m.minPages)))
	if m.maxPages >= 0 {
		mem = cat([]byte{0x01}, u32(uint32(m.minPages)), u32(uint32(m.maxPages)))
	}
	var tables []byte
	if m.tables != nil {
		tables = sec(4, m.tables)
	}
	return cat([]byte("\x00asm\x01\x00\x00\x00"),
		sec(1, vec(types...)), sec(3, vec(funcs...)), tables, sec(5, vec(mem)),
		sec(7, vec(exports...)), sec(10, vec(codes...)))
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// Instructions.
func i32c(v int32) []byte     { return cat([]byte{0x41}, s64(int64(v))) }
func i64c(v int64) []byte     { return cat([]byte{0x42}, s64(v)) }
func lget(i uint32) []byte    { return cat([]byte{0x20}, u32(i)) }
func lset(i uint32) []byte    { return cat([]byte{0x21}, u32(i)) }
func ltee(i uint32) []byte    { return cat([]byte{0x22}, u32(i)) }
func call(i uint32) []byte    { return cat([]byte{0x10}, u32(i)) }
func br(l uint32) []byte      { return cat([]byte{0x0C}, u32(l)) }
func brIf(l uint32) []byte    { return cat([]byte{0x0D}, u32(l)) }
func block(bt byte) []byte    { return []byte{0x02, bt} }
func loop(bt byte) []byte     { return []byte{0x03, bt} }
func ifb(bt byte) []byte      { return []byte{0x04, bt} }
func load(off uint32) []byte  { return cat([]byte{0x28, 0x02}, u32(off)) }
func store(off uint32) []byte { return cat([]byte{0x36, 0x02}, u32(off)) }
func brTable(ls ...uint32) []byte { // the last label is the default
	b := cat([]byte{0x0E}, u32(uint32(len(ls)-1)))
	for _, l := range ls {
		b = append(b, u32(l)...)
	}
	return b
}

var (
	end        = []byte{0x0B}
	els        = []byte{0x05}
	ret        = []byte{0x0F}
	drop       = []byte{0x1A}
	add        = []byte{0x6A}
	sub        = []byte{0x6B}
	mul        = []byte{0x6C}
	xor        = []byte{0x73}
	eqz        = []byte{0x45}
	memGrow    = []byte{0x40, 0x00}
	memSize    = []byte{0x3F, 0x00}
	memFill    = []byte{0xFC, 0x0B, 0x00}
	memCopy    = []byte{0xFC, 0x0A, 0x00, 0x00}
	selectOp   = []byte{0x1B}
	empty      = byte(0x40)
	unreachble = []byte{0x00}
)

// instance is a compiled module in a fresh runtime.
type instance struct {
	t   testing.TB
	mod api.Module
}

func instantiate(t testing.TB, wasm []byte) *instance {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	m, err := r.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	return &instance{t, m}
}

func instrument(t testing.TB, wasm []byte, opts meter.Options) []byte {
	t.Helper()
	out, err := meter.Instrument(wasm, opts)
	if err != nil {
		t.Fatalf("instrument: %v", err)
	}
	return out
}

func (in *instance) global(name string) api.MutableGlobal {
	g, ok := in.mod.ExportedGlobal(name).(api.MutableGlobal)
	if !ok {
		in.t.Fatalf("no mutable global %q", name)
	}
	return g
}

// run calls export f with fuel (math.MaxInt64: unlimited) and returns its
// results, the fuel it used and the error.
func (in *instance) run(f string, fuel int64, args ...uint64) ([]uint64, int64, error) {
	g := in.global(meter.FuelExport)
	g.Set(uint64(fuel))
	res, err := in.mod.ExportedFunction(f).Call(context.Background(), args...)
	return res, fuel - int64(g.Get()), err
}

// fuelOf runs f with plenty of fuel and returns the fuel it used.
func fuelOf(t *testing.T, m mod, f string, args ...uint64) (uint64, int64) {
	t.Helper()
	in := instantiate(t, instrument(t, m.bytes(), meter.Options{Fuel: true}))
	res, used, err := in.run(f, math.MaxInt64/2, args...)
	if err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	var r uint64
	if len(res) > 0 {
		r = res[0]
	}
	return r, used
}

// TestBlockCosts: the fuel each shape of code is charged, as the package
// documentation defines it.
func TestBlockCosts(t *testing.T) {
	cases := []struct {
		name string
		fn   fn
		args []uint64
		want uint64 // result
		fuel int64
	}{
		{
			// (i32.add (i32.const 1) (i32.const 2)): one segment of 3.
			name: "straight", fn: fn{results: []byte{i32}, body: cat(i32c(1), i32c(2), add)},
			want: 3, fuel: 3,
		},
		{
			// An empty function still costs 1.
			name: "empty", fn: fn{}, fuel: 1,
		},
		{
			// (loop (br_if 0 (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))) (local.get 0)
			// entry: loop 0 + local.get 1; each iteration 5.
			name: "loop", fn: fn{params: []byte{i32}, results: []byte{i32},
				body: cat(loop(empty), lget(0), i32c(1), sub, ltee(0), brIf(0), end, lget(0))},
			args: []uint64{10}, want: 0, fuel: 1 + 5*10,
		},
		{
			// (if (result i32) (local.get 0) (then (i32.const 1)) (else (i32.const 2) (i32.const 3) i32.add))
			// entry 2 (local.get, if), then 1.
			name: "if/then", fn: fn{params: []byte{i32}, results: []byte{i32},
				body: cat(lget(0), ifb(i32), i32c(1), els, i32c(2), i32c(3), add, end)},
			args: []uint64{1}, want: 1, fuel: 2 + 1,
		},
		{
			name: "if/else", fn: fn{params: []byte{i32}, results: []byte{i32},
				body: cat(lget(0), ifb(i32), i32c(1), els, i32c(2), i32c(3), add, end)},
			args: []uint64{0}, want: 5, fuel: 2 + 3,
		},
		{
			// (block (br_if 0 (local.get 0)) (drop (i32.const 5))) (i32.const 7)
			// The block is a branch target: the code after its end is its own
			// segment (1); the entry segment counts everything up to the end
			// (4), also when the branch skips part of it.
			name: "targeted block, taken", fn: fn{params: []byte{i32}, results: []byte{i32},
				body: cat(block(empty), lget(0), brIf(0), i32c(5), drop, end, i32c(7))},
			args: []uint64{1}, want: 7, fuel: 4 + 1,
		},
		{
			name: "targeted block, not taken", fn: fn{params: []byte{i32}, results: []byte{i32},
				body: cat(block(empty), lget(0), brIf(0), i32c(5), drop, end, i32c(7))},
			args: []uint64{0}, want: 7, fuel: 4 + 1,
		},
		{
			// A block no branch targets is part of its parent's segment.
			name: "plain block", fn: fn{results: []byte{i32}, body: cat(block(empty), i32c(5), drop, end, i32c(7))},
			want: 7, fuel: 3,
		},
		{
			// br_table to three blocks: the segment after each targeted end.
			// (block (block (block (br_table 0 1 2 (local.get 0))) (return (i32.const 10))) (return (i32.const 20))) (i32.const 30)
			name: "br_table", fn: fn{params: []byte{i32}, results: []byte{i32},
				body: cat(block(empty), block(empty), block(empty), lget(0), brTable(0, 1, 2), end,
					i32c(10), ret, end, i32c(20), ret, end, i32c(30))},
			args: []uint64{1}, want: 20, fuel: 2 + 2,
		},
		{
			// memory.fill of 800 bytes: 3 operands, 10 base, 800/8 at run time.
			name: "memory.fill", fn: fn{body: cat(i32c(0), i32c(7), i32c(800), memFill)},
			fuel: 3 + meter.BulkBaseCost + 800/meter.BulkBytesPerFuel,
		},
		{
			// memory.copy of 16 bytes.
			name: "memory.copy", fn: fn{body: cat(i32c(100), i32c(0), i32c(16), memCopy)},
			fuel: 3 + meter.BulkBaseCost + 16/meter.BulkBytesPerFuel,
		},
		{
			// memory.grow by 2 pages.
			name: "memory.grow", fn: fn{results: []byte{i32}, body: cat(i32c(2), memGrow)},
			want: 1, fuel: 1 + meter.GrowBaseCost + 2*meter.GrowPageCost,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, used := fuelOf(t, mod{funcs: []fn{c.fn}, minPages: 1, maxPages: 4}, "f0", c.args...)
			if res != c.want || used != c.fuel {
				t.Fatalf("result %d, fuel %d; want %d, fuel %d", res, used, c.want, c.fuel)
			}
		})
	}
}

// TestCallCost: a call costs CallCost in the caller plus the callee's own
// segments.
func TestCallCost(t *testing.T) {
	m := mod{funcs: []fn{
		{results: []byte{i32}, body: cat(i32c(1), i32c(2), add)},               // 3
		{results: []byte{i32}, body: cat(call(0), call(0), add, i32c(1), add)}, // 10+10+1+1+1 = 23
	}, minPages: 1, maxPages: -1}
	res, used := fuelOf(t, m, "f1")
	if res != 7 || used != 23+2*3 {
		t.Fatalf("result %d fuel %d, want 7 and %d", res, used, 23+6)
	}
}

// TestOutOfFuel: with one unit less than a call needs, the call traps and
// the counter is negative; with exactly what it needs, it succeeds and the
// counter is 0. An infinite loop always runs out.
func TestOutOfFuel(t *testing.T) {
	m := mod{funcs: []fn{
		{params: []byte{i32}, results: []byte{i32},
			body: cat(loop(empty), lget(0), i32c(1), sub, ltee(0), brIf(0), end, lget(0))},
		{body: cat(loop(empty), br(0), end)}, // (loop (br 0))
	}, minPages: 1, maxPages: -1}
	in := instantiate(t, instrument(t, m.bytes(), meter.Options{Fuel: true}))
	need := int64(1 + 5*100)
	if _, used, err := in.run("f0", need, 100); err != nil || used != need {
		t.Fatalf("with exactly %d: used %d, %v", need, used, err)
	}
	if _, _, err := in.run("f0", need-1, 100); err == nil {
		t.Fatal("one unit short: no trap")
	}
	if left := int64(in.global(meter.FuelExport).Get()); left >= 0 {
		t.Fatalf("after running out the counter is %d, want < 0", left)
	}
	for _, fuel := range []int64{1, 1000, 1_000_000} {
		if _, used, err := in.run("f1", fuel); err == nil || used <= fuel {
			t.Fatalf("infinite loop with %d fuel: used %d, %v", fuel, used, err)
		}
	}
}

// TestStackBudget: recursion stops at the same depth wherever it runs:
// frames of FrameSlots(1, 0) slots, the exported call included.
func TestStackBudget(t *testing.T) {
	// f0(n) = n == 0 ? 0 : f0(n-1) + 1
	m := mod{funcs: []fn{{params: []byte{i32}, results: []byte{i32},
		body: cat(lget(0), eqz, ifb(i32), i32c(0), els, lget(0), i32c(1), sub, call(0), i32c(1), add, end)}},
		minPages: 1, maxPages: -1}
	frame := meter.FrameSlots(1, 0)
	budget := 10 * frame
	in := instantiate(t, instrument(t, m.bytes(), meter.Options{Fuel: true, StackSlots: budget}))
	stack := in.global(meter.StackExport)
	for n, ok := range map[uint64]bool{0: true, 9: true, 10: false, 1000: false} {
		stack.Set(budget)
		res, _, err := in.run("f0", math.MaxInt64/2, n)
		switch {
		case ok && (err != nil || res[0] != n):
			t.Fatalf("depth %d: %v, %v", n+1, res, err)
		case ok && stack.Get() != budget:
			t.Fatalf("depth %d: budget %d after return, want %d back", n+1, stack.Get(), budget)
		case !ok && err == nil:
			t.Fatalf("depth %d over a budget of %d frames: no trap", n+1, budget/frame)
		case !ok && int64(stack.Get()) >= 0:
			t.Fatalf("depth %d: trapped with the budget at %d, want < 0", n+1, int64(stack.Get()))
		}
	}
}

// TestMemoryCap: the memory maximum is lowered to the cap, or set when the
// module has none; a module that starts above the cap is refused.
func TestMemoryCap(t *testing.T) {
	grow := fn{params: []byte{i32}, results: []byte{i32}, body: cat(lget(0), memGrow)}
	for _, max := range []int{-1, 3, 100} {
		wasm := instrument(t, mod{funcs: []fn{grow}, minPages: 1, maxPages: max}.bytes(), meter.Options{MemoryPages: 3})
		in := instantiate(t, wasm)
		res, err := in.mod.ExportedFunction("f0").Call(context.Background(), 2)
		if err != nil || int32(res[0]) != 1 {
			t.Fatalf("max %d: grow to 3 pages: %v %v", max, res, err)
		}
		res, err = in.mod.ExportedFunction("f0").Call(context.Background(), 1)
		if err != nil || int32(res[0]) != -1 {
			t.Fatalf("max %d: grow to 4 pages over a cap of 3: got %d, want -1", max, int32(res[0]))
		}
	}
	_, err := meter.Instrument(mod{funcs: []fn{grow}, minPages: 4, maxPages: -1}.bytes(), meter.Options{MemoryPages: 3})
	if err == nil {
		t.Fatal("a module starting at 4 pages accepted under a cap of 3")
	}
}

// TestSIMDImmediates: SIMD instructions with each kind of immediate (memory
// arguments, 16-byte constants and shuffles, lane indexes, both together)
// decode, and the instrumented function computes what the original does.
func TestSIMDImmediates(t *testing.T) {
	simd := func(op uint32, imm ...byte) []byte { return cat([]byte{0xFD}, u32(op), imm) }
	lanes := make([]byte, 16)
	shuffle := make([]byte, 16)
	for i := range lanes {
		lanes[i] = byte(i * 7)
		shuffle[i] = byte(31 - i)
	}
	body := cat(
		i32c(0), simd(0x0C, lanes...), simd(0x0B, 4, 0), // v128.const, v128.store
		i32c(16), i32c(0), simd(0x00, 4, 0), simd(0x5B, 3, 0, 1), // v128.load, v128.store64_lane 1
		i32c(0), simd(0x00, 4, 0), // v128.load
		i32c(16), simd(0x5D, 3, 0), // v128.load64_zero
		simd(0x0D, shuffle...), // i8x16.shuffle
		simd(0x1B, 2),          // i32x4.extract_lane 2
		i32c(24), load(0), add,
	)
	m := mod{funcs: []fn{{results: []byte{i32}, body: body}}, minPages: 1, maxPages: -1}
	plain := instantiate(t, m.bytes())
	want, err := plain.mod.ExportedFunction("f0").Call(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in := instantiate(t, instrument(t, m.bytes(), meter.Options{Fuel: true, StackSlots: 100}))
	in.global(meter.StackExport).Set(100)
	got, used, err := in.run("f0", 1000)
	if err != nil || got[0] != want[0] || used != 16 { // 16 instructions of cost 1
		t.Fatalf("got %v (fuel %d, %v), want %v", got, used, err, want)
	}
}

// nested is a function whose body nests depth empty blocks.
func nested(depth int) fn {
	return fn{body: cat(bytes.Repeat(block(0x40), depth), bytes.Repeat([]byte{0x0B}, depth))}
}

// TestNestingBounds: a module whose functions nest blocks deeper than
// MaxNesting, or whose nesting work (the sum of the squares of each
// function's deepest nesting) exceeds MaxNestingWork, is refused before
// anything compiles it; up to the bounds it is instrumented.
func TestNestingBounds(t *testing.T) {
	deep := meter.MaxNesting
	perFunc := deep / 2 * (deep / 2) // of a function nesting deep/2
	fit := meter.MaxNestingWork / perFunc
	for _, c := range []struct {
		name    string
		funcs   []fn
		refused string // "" when it is instrumented
	}{
		{"at the depth bound", []fn{nested(deep)}, ""},
		{"past the depth bound", []fn{nested(deep + 1)}, "nests blocks more than 10000 deep"},
		{"at the work bound", slices.Repeat([]fn{nested(deep / 2)}, fit), ""},
		{"past the work bound", slices.Repeat([]fn{nested(deep / 2)}, fit+1), "too deep to compile in reasonable time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := meter.Instrument(mod{funcs: c.funcs, minPages: 1, maxPages: 1}.bytes(), meter.Options{Fuel: true, MemoryPages: 1})
			switch {
			case c.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.refused != "" && (!errors.Is(err, meter.ErrUnsupported) || !strings.Contains(err.Error(), c.refused)):
				t.Fatalf("err = %v, want ErrUnsupported with %q", err, c.refused)
			}
		})
	}
}

// TestCodeBounds: the other shapes of code that cost a compiler more than
// their size (MaxFunctions, MaxFunctionBytes, MaxModuleLocals,
// MaxBrTableLabels, MaxBrTableWork) are refused before anything compiles
// them, and up to each bound a module is instrumented.
func TestCodeBounds(t *testing.T) {
	empty := fn{}
	locals := func(n int) fn { // n i32 locals in groups of 50,000 at most
		f := fn{}
		for range n {
			f.locals = append(f.locals, i32)
		}
		return f
	}
	brTable := func(labels int) fn {
		ls := make([]uint32, labels) // all to the function's own block
		return fn{body: cat(i32c(0), brTable(ls...))}
	}
	bigBody := func(n int) fn { return fn{body: bytes.Repeat([]byte{0x01}, n)} } // nops
	funcs := func(n int, f fn) []fn { return slices.Repeat([]fn{f}, n) }
	for _, c := range []struct {
		name    string
		funcs   []fn
		refused string // "" when it is instrumented
	}{
		{"functions at the bound", funcs(meter.MaxFunctions, empty), ""},
		{"functions past the bound", funcs(meter.MaxFunctions+1, empty), "functions; the limit is"},
		{"a body at the bound", []fn{bigBody(meter.MaxFunctionBytes - 8)}, ""},
		{"a body past the bound", []fn{bigBody(meter.MaxFunctionBytes)}, "bytes; the limit is"},
		{"locals at the bound", funcs(meter.MaxModuleLocals/50_000, locals(50_000)), ""},
		{"locals past the bound", funcs(meter.MaxModuleLocals/50_000+1, locals(50_000)), "locals in all functions"},
		{"a br_table at the bound", []fn{brTable(meter.MaxBrTableLabels)}, ""},
		{"a br_table past the bound", []fn{brTable(meter.MaxBrTableLabels + 1)}, "a br_table of 16385 labels"},
		{"br_tables at the work bound", funcs(16, brTable(meter.MaxBrTableLabels)), ""},
		{"br_tables past the work bound", funcs(17, brTable(meter.MaxBrTableLabels)), "br_tables too long to compile"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := meter.Instrument(mod{funcs: c.funcs, minPages: 1, maxPages: 1}.bytes(), meter.Options{Fuel: true, MemoryPages: 1})
			switch {
			case c.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.refused != "" && (!errors.Is(err, meter.ErrUnsupported) || !strings.Contains(err.Error(), c.refused)):
				t.Fatalf("err = %v, want ErrUnsupported with %q", err, c.refused)
			}
		})
	}
}

// TestTableBounds: a table's maximum is clamped to MaxTableElements, so
// table.grow past it fails (-1) instead of taking memory the memory cap
// does not count (found by an attack: one command grew a table by 15
// million elements, 120 MB, on every node, and again on every replay); a
// table that starts larger, or more than MaxTables tables, is refused.
func TestTableBounds(t *testing.T) {
	table := func(flag byte, limits ...uint32) []byte { // one funcref table
		b := []byte{0x70, flag}
		for _, l := range limits {
			b = append(b, u32(l)...)
		}
		return b
	}
	// grow: table.grow(ref.null func, n) of table 0, and its answer.
	grow := fn{params: []byte{i32}, results: []byte{i32}, body: cat([]byte{0xD0, 0x70}, lget(0), []byte{0xFC, 15, 0})}
	for _, c := range []struct {
		name   string
		tables []byte
		grows  map[uint64]int32 // n -> table.grow's answer, in order
	}{
		{"no maximum", vec(table(0, 0)), map[uint64]int32{meter.MaxTableElements + 1: -1}},
		{"a larger maximum", vec(table(1, 0, 1<<30)), map[uint64]int32{meter.MaxTableElements + 1: -1}},
		{"up to the bound", vec(table(0, 10)), map[uint64]int32{meter.MaxTableElements - 10: 10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := instantiate(t, instrument(t, mod{funcs: []fn{grow}, minPages: 1, maxPages: 1, tables: c.tables}.bytes(), meter.Options{MemoryPages: 1}))
			for n, want := range c.grows {
				res, err := in.mod.ExportedFunction("f0").Call(context.Background(), n)
				if err != nil || int32(res[0]) != want {
					t.Fatalf("table.grow(%d) = %v, %v; want %d", n, res, err, want)
				}
			}
		})
	}
	for name, tables := range map[string][]byte{
		"starts past the bound": vec(table(0, meter.MaxTableElements+1)),
		"too many tables":       vec(slices.Repeat([][]byte{table(0, 0)}, meter.MaxTables+1)...),
	} {
		if _, err := meter.Instrument(mod{funcs: []fn{grow}, minPages: 1, maxPages: 1, tables: tables}.bytes(), meter.Options{MemoryPages: 1}); !errors.Is(err, meter.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

package meter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/raftkv/raftkv/host/plugin/meter"
)

// gen writes random, terminating, trap-free functions: structured control
// flow of every kind (blocks, counted loops, if/else, br, br_if, br_table,
// early returns), calls, locals, loads and stores, bulk memory and
// memory.grow. Each function i may call functions below i only.
type gen struct {
	r      *rand.Rand
	fn     int    // index of the function being written
	labels []byte // enclosing labels, innermost last: 'b' block/if (arity 0), 'l' loop
	size   int    // instructions left to spend
	nres   int    // results of the function being written
}

const (
	nLocals   = 4 // i32 locals 0..3 are general purpose
	nCounters = 8 // locals 4..11 count loop iterations, one per loop depth
)

func (g *gen) expr(depth int) []byte {
	g.size--
	if depth > 4 || g.size <= 0 {
		if g.r.IntN(2) == 0 {
			return i32c(g.r.Int32N(1000) - 500)
		}
		return lget(uint32(g.r.IntN(nLocals)))
	}
	switch g.r.IntN(10) {
	case 0:
		return i32c(int32(g.r.Uint32()))
	case 1:
		return lget(uint32(g.r.IntN(nLocals)))
	case 2, 3:
		ops := [][]byte{add, sub, mul, xor, {0x71}, {0x72}, {0x74}, {0x76}, {0x77}} // and or shl shr_u rotl
		return cat(g.expr(depth+1), g.expr(depth+1), ops[g.r.IntN(len(ops))])
	case 4:
		return cat(g.addr(depth), load(0))
	case 5:
		if g.fn > 0 {
			return cat(g.expr(depth+1), call(uint32(g.r.IntN(g.fn))))
		}
		return memSize
	case 6:
		return cat(g.expr(depth+1), g.expr(depth+1), g.expr(depth+1), selectOp)
	case 7: // (if (result i32) e (then e) (else e))
		cond := g.expr(depth + 1) // outside the if's label
		g.labels = append(g.labels, 'v')
		b := cat(cond, ifb(i32), g.expr(depth+1), els, g.expr(depth+1), end)
		g.labels = g.labels[:len(g.labels)-1]
		return b
	case 8: // (block (result i32) stmts e)
		g.labels = append(g.labels, 'v')
		b := cat(block(i32), g.stmts(depth+1, 2), g.expr(depth+1), end)
		g.labels = g.labels[:len(g.labels)-1]
		return b
	}
	return memSize
}

// addr is an aligned address in the first page.
func (g *gen) addr(depth int) []byte { return cat(g.expr(depth+1), i32c(0xFFC), []byte{0x71}) }

func (g *gen) stmts(depth, n int) []byte {
	var b []byte
	for range g.r.IntN(n + 1) {
		b = append(b, g.stmt(depth)...)
	}
	return b
}

// target returns a random enclosing label of arity 0 that is not a loop, as
// a relative depth, or -1.
func (g *gen) target() int {
	var ok []int
	for i := len(g.labels) - 1; i >= 0; i-- {
		if g.labels[i] == 'b' {
			ok = append(ok, len(g.labels)-1-i)
		}
	}
	if len(ok) == 0 {
		return -1
	}
	return ok[g.r.IntN(len(ok))]
}

func (g *gen) stmt(depth int) []byte {
	g.size--
	if depth > 5 || g.size <= 0 {
		return cat(g.expr(depth), lset(uint32(g.r.IntN(nLocals))))
	}
	switch g.r.IntN(12) {
	case 0, 1:
		return cat(g.expr(depth), lset(uint32(g.r.IntN(nLocals))))
	case 2:
		return cat(g.addr(depth), g.expr(depth), store(0))
	case 3: // (block stmts (br_if L e) stmts)
		g.labels = append(g.labels, 'b')
		b := cat(block(empty), g.stmts(depth+1, 3))
		if l := g.target(); l >= 0 {
			b = cat(b, g.expr(depth), brIf(uint32(l)))
		}
		b = cat(b, g.stmts(depth+1, 3), end)
		g.labels = g.labels[:len(g.labels)-1]
		return b
	case 4: // a counted loop
		c := uint32(nLocals + min(depth, nCounters-1))
		g.labels = append(g.labels, 'l')
		b := cat(i32c(g.r.Int32N(6)), lset(c), loop(empty), g.stmts(depth+1, 3),
			lget(c), i32c(1), sub, ltee(c), i32c(0), []byte{0x4A}, brIf(0), end) // i32.gt_s
		g.labels = g.labels[:len(g.labels)-1]
		return b
	case 5: // (if e (then stmts) (else stmts))
		cond := g.expr(depth)
		g.labels = append(g.labels, 'b')
		b := cat(cond, ifb(empty), g.stmts(depth+1, 3))
		if g.r.IntN(2) == 0 {
			b = cat(b, els, g.stmts(depth+1, 3))
		}
		g.labels = g.labels[:len(g.labels)-1]
		return cat(b, end)
	case 6: // br_table over three blocks and the enclosing labels
		g.labels = append(g.labels, 'b', 'b', 'b')
		index := g.expr(depth) // inside the three blocks
		var ls []uint32
		for range 1 + g.r.IntN(4) {
			if l := g.target(); l >= 0 {
				ls = append(ls, uint32(l))
			}
		}
		ls = append(ls, uint32(g.r.IntN(3)))
		b := cat(block(empty), block(empty), block(empty), index, brTable(ls...), end)
		g.labels = g.labels[:len(g.labels)-1]
		b = cat(b, g.stmts(depth+1, 2), end)
		g.labels = g.labels[:len(g.labels)-1]
		b = cat(b, g.stmts(depth+1, 2), end)
		g.labels = g.labels[:len(g.labels)-1]
		return b
	case 7: // (if e (then (return e)))
		cond := g.expr(depth)
		g.labels = append(g.labels, 'b')
		b := cat(cond, ifb(empty))
		for range g.nres {
			b = cat(b, g.expr(depth+1))
		}
		b = cat(b, ret, end)
		g.labels = g.labels[:len(g.labels)-1]
		return b
	case 8: // (br L) at the end of a block
		g.labels = append(g.labels, 'b')
		b := cat(block(empty), g.stmts(depth+1, 2))
		if l := g.target(); l >= 0 {
			b = cat(b, br(uint32(l)), g.stmts(depth+1, 1)) // dead code after br
		}
		g.labels = g.labels[:len(g.labels)-1]
		return cat(b, end)
	case 9: // memory.fill or memory.copy within the first page
		n := cat(g.expr(depth), i32c(0x3FF), []byte{0x71})
		if g.r.IntN(2) == 0 {
			return cat(g.addr(depth), g.expr(depth), n, memFill)
		}
		return cat(g.addr(depth), g.addr(depth), n, memCopy)
	case 10: // (drop (memory.grow (i32.const 0 or 1)))
		return cat(i32c(g.r.Int32N(2)), memGrow, drop)
	}
	if g.fn > 0 {
		return cat(g.expr(depth), call(uint32(g.r.IntN(g.fn))), lset(uint32(g.r.IntN(nLocals))))
	}
	return nil
}

// genModule returns a module of 1 to 6 functions (i32) -> i32 and one
// function () -> (i32, i32) (multi-value), all exported.
func genModule(seed uint64) mod {
	g := &gen{r: rand.New(rand.NewPCG(seed, 7))}
	locals := bytes.Repeat([]byte{i32}, nLocals+nCounters-1) // local 0 is the parameter
	m := mod{minPages: 1, maxPages: 2}
	n := 1 + g.r.IntN(6)
	for i := range n {
		g.fn, g.labels, g.size, g.nres = i, nil, 20+g.r.IntN(200), 1
		body := cat(g.stmts(0, 8), g.expr(0))
		m.funcs = append(m.funcs, fn{params: []byte{i32}, results: []byte{i32}, locals: locals, body: body})
	}
	g.fn, g.labels, g.size, g.nres = n, nil, 30, 2
	body := cat(lget(0), lget(0), g.stmts(0, 4), []byte{0x1A, 0x1A}, g.expr(0), g.expr(0))
	m.funcs = append(m.funcs, fn{results: []byte{i32, i32}, locals: append([]byte{i32}, locals...), body: body})
	return m
}

// outcome is everything a run of a module shows: each call's results or
// trap, then the memory.
type outcome struct {
	results []string
	memory  []byte
	fuel    int64
}

func compile(t testing.TB, r wazero.Runtime, wasm []byte) wazero.CompiledModule {
	t.Helper()
	c, err := r.CompileModule(context.Background(), wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return c
}

func run(t testing.TB, r wazero.Runtime, c wazero.CompiledModule, nfuncs int, fuel int64) outcome {
	t.Helper()
	ctx := context.Background()
	m, err := r.InstantiateModule(ctx, c, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	defer m.Close(ctx)
	var o outcome
	g, _ := m.ExportedGlobal(meter.FuelExport).(api.MutableGlobal)
	if g != nil {
		g.Set(uint64(fuel))
	}
	if s, ok := m.ExportedGlobal(meter.StackExport).(api.MutableGlobal); ok {
		s.Set(1 << 20)
	}
	for i := range nfuncs {
		f := m.ExportedFunction(fmt.Sprintf("f%d", i))
		args := []uint64{uint64(i * 7919)}[:len(f.Definition().ParamTypes())]
		res, err := f.Call(ctx, args...)
		if err != nil {
			o.results = append(o.results, "trap")
			break
		}
		if g != nil && int64(g.Get()) < 0 { // as the host checks after each call
			o.results = append(o.results, "out of fuel")
			break
		}
		o.results = append(o.results, fmt.Sprint(res))
	}
	mem, _ := m.Memory().Read(0, m.Memory().Size())
	o.memory = bytes.Clone(mem)
	if g != nil {
		o.fuel = fuel - int64(g.Get())
	}
	return o
}

// differential checks one generated module: the instrumented module
// validates and computes what the original computes, uses the same fuel
// every time, and runs out of fuel exactly one unit short of what it used.
func differential(t testing.TB, rc wazero.Runtime, seed uint64) {
	m := genModule(seed)
	wasm := m.bytes()
	n := len(m.funcs)
	ctx := context.Background()
	pc := compile(t, rc, wasm)
	defer pc.Close(ctx)
	plain := run(t, rc, pc, n, 0)
	opts := []meter.Options{{Fuel: true, StackSlots: 1 << 20}, {Fuel: true}, {StackSlots: 1 << 20}}
	if seed%4 != 0 {
		// The call-stack budget changes the code most; fuel alone, or the
		// call-stack budget alone (a trusted plugin's), now and then.
		opts = opts[:1]
	}
	for _, opts := range opts {
		out, err := meter.Instrument(wasm, opts)
		if err != nil {
			t.Fatalf("seed %d: instrument: %v", seed, err)
		}
		inst := compile(t, rc, out)
		defer inst.Close(ctx)
		got := run(t, rc, inst, n, math.MaxInt64/2)
		if fmt.Sprint(got.results) != fmt.Sprint(plain.results) || !bytes.Equal(got.memory, plain.memory) {
			t.Fatalf("seed %d %+v: instrumented %v, original %v (memory equal: %v)", seed, opts,
				got.results, plain.results, bytes.Equal(got.memory, plain.memory))
		}
		if !opts.Fuel {
			continue
		}
		again := run(t, rc, inst, n, math.MaxInt64/2)
		if again.fuel != got.fuel {
			t.Fatalf("seed %d: fuel %d then %d for the same run", seed, got.fuel, again.fuel)
		}
		if got.fuel < int64(len(got.results)) {
			t.Fatalf("seed %d: %d calls used %d fuel: %v", seed, len(got.results), got.fuel, got.results)
		}
		short := run(t, rc, inst, n, got.fuel-1)
		if last := short.results[len(short.results)-1]; last != "trap" && last != "out of fuel" {
			t.Fatalf("seed %d: one unit short of %d, no trap: %v", seed, got.fuel, short.results)
		}
		exact := run(t, rc, inst, n, got.fuel)
		if fmt.Sprint(exact.results) != fmt.Sprint(plain.results) {
			t.Fatalf("seed %d: with exactly %d fuel: %v", seed, got.fuel, exact.results)
		}
	}
}

// TestDifferential: generated modules, instrumented, validate in wazero and
// behave exactly as the originals except for fuel, with the optimizing
// compiler the plugins run on. (A fuzz target over the seed would find
// nothing more: the generator is random either way; FuzzInstrument fuzzes
// the bytes.)
func TestDifferential(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 60
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for seed := range uint64(seeds) {
		differential(t, r, seed)
	}
}

// FuzzInstrument: arbitrary bytes never make Instrument panic; whatever it
// accepts and wazero compiles before, wazero compiles after, and a refusal
// is one of the package's errors.
func FuzzInstrument(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(genModule(seed).bytes())
	}
	f.Add(mod{funcs: []fn{{body: cat(i32c(0), i32c(0), i32c(0), memFill)}}, minPages: 1, maxPages: -1}.bytes())
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := meter.Instrument(wasm, meter.Options{Fuel: true, StackSlots: 100, MemoryPages: 2})
		if err != nil {
			if !errors.Is(err, meter.ErrMalformed) && !errors.Is(err, meter.ErrUnsupported) && !errors.Is(err, meter.ErrMemory) {
				t.Fatalf("error outside the package's: %v", err)
			}
			return
		}
		c, err := r.CompileModule(ctx, wasm)
		if err != nil {
			return
		}
		c.Close(ctx)
		mems := c.ExportedMemories()
		c2, err := r.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("the original compiles, the instrumented module does not: %v", err)
		}
		defer c2.Close(ctx)
		for name, m := range c2.ExportedMemories() {
			if max, ok := m.Max(); !ok || max > 2 {
				t.Fatalf("memory %q: max %d (%v) over the cap of 2 pages", name, max, ok)
			}
		}
		_ = mems
	})
}

// TestInstrumentDeterministic: the same bytes and options give the same
// output, and instrumenting is idempotent in refusing reserved names.
func TestInstrumentDeterministic(t *testing.T) {
	wasm := genModule(42).bytes()
	a := instrument(t, wasm, meter.Options{Fuel: true, StackSlots: 1000, MemoryPages: 2})
	b := instrument(t, wasm, meter.Options{Fuel: true, StackSlots: 1000, MemoryPages: 2})
	if !bytes.Equal(a, b) {
		t.Fatal("two instrumentations differ")
	}
	if _, err := meter.Instrument(a, meter.Options{Fuel: true}); !errors.Is(err, meter.ErrUnsupported) {
		t.Fatalf("instrumenting twice: %v, want ErrUnsupported (reserved export)", err)
	}
}

// TestUnknownOpcodes: opcodes outside WebAssembly 2.0 are refused with
// ErrUnsupported, naming the opcode.
func TestUnknownOpcodes(t *testing.T) {
	for name, body := range map[string][]byte{
		"try (exceptions)":      {0x06, 0x40, 0x0B},
		"return_call (tail)":    {0x12, 0x00},
		"atomics":               {0xFE, 0x00},
		"0xFC 18":               {0xFC, 0x12},
		"unassigned SIMD 0x9A":  {0xFD, 0x9A, 0x01},
		"relaxed SIMD 0x100":    {0xFD, 0x80, 0x02},
		"unassigned 0x27":       {0x27},
		"memory index in load":  {0x41, 0x00, 0x28, 0x42, 0x00, 0x00, 0x1A},
		"memory.size memidx 1 ": {0x3F, 0x01, 0x1A},
	} {
		wasm := mod{funcs: []fn{{body: body}}, minPages: 1, maxPages: -1}.bytes()
		_, err := meter.Instrument(wasm, meter.Options{Fuel: true})
		if !errors.Is(err, meter.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

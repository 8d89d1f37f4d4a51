package meter

import (
	"errors"
	"fmt"
)

// Errors returned by Instrument. Every error wraps one of them.
var (
	// ErrMalformed means the bytes are not a well-formed WebAssembly module.
	ErrMalformed = errors.New("meter: malformed module")
	// ErrUnsupported means the module uses an instruction or a construct
	// (an unknown opcode, shared or 64-bit memory, a reserved export name)
	// that cannot be metered.
	ErrUnsupported = errors.New("meter: unsupported module")
	// ErrMemory means the module's memory needs more pages than
	// Options.MemoryPages allows.
	ErrMemory = errors.New("meter: memory over the cap")
)

// Bounds on a module's control nesting (block, loop and if), checked before
// anything compiles the module: the time wazero's optimising compiler takes
// grows with the square of a function's nesting depth. On the reference
// machine a function of 8,000 nested blocks compiled in 0.26 s, one of
// 32,000 (96 KB of wasm) in 4 s, and one of a million (3 MB, found by an
// attack on the deploy endpoint) kept a core busy for minutes after its
// client had gone. Go-built plugins nest at most 550 deep, for a work of
// some 4 million (kv.wasm 3.8M, the queue and ledger examples 4.0M).
const (
	// MaxNesting is the deepest nesting of one function.
	MaxNesting = 10_000
	// MaxNestingWork bounds the sum, over the module's functions, of the
	// square of each one's deepest nesting: about a second of compiling.
	MaxNestingWork = 1 << 28
)

// Bounds on the other shapes of code whose compile time or memory grows
// faster than their size, or that hold memory the memory cap does not
// count; all found by an attack on the deploy endpoint (figures from that
// machine). Go-built plugins (kv.wasm) have 2,496 functions, bodies of at
// most 29 KB, 10,240 locals in all, br_tables of at most some 550 labels,
// and one table of 6,592 elements.
const (
	// MaxFunctions bounds the functions a module defines (200,000 small
	// ones, 2.2 MB, compiled in 4 s).
	MaxFunctions = 100_000
	// MaxFunctionBytes bounds one function body: compiling a function
	// takes some 800 MB of memory per MiB of its body (2 MiB: 1.6 GB).
	MaxFunctionBytes = 256 << 10
	// MaxModuleLocals bounds the locals of all functions together (20,000
	// functions of 50,000 locals each, 160 KB, took a node past 6 GB).
	MaxModuleLocals = 1 << 20
	// MaxBrTableLabels bounds one br_table, and MaxBrTableWork the sum of
	// the squares of every br_table's label count: the compiler's time
	// grows with that square (200,000 labels: 10 s; 4 million: hours).
	MaxBrTableLabels = 1 << 14
	MaxBrTableWork   = 1 << 32
	// MaxTables bounds the tables a module defines, and MaxTableElements
	// each one's size: a table's maximum is clamped to it, so table.grow
	// past it fails (-1) on every node. Without it one command could grow a
	// table by billions of elements (8 bytes each) on every node, outside
	// the memory cap, and again on every replay.
	MaxTables        = 16
	MaxTableElements = 1 << 20
)

// Names of the globals Instrument adds and exports. A module that already
// exports either name is refused.
const (
	FuelExport  = "raftkv_fuel"
	StackExport = "raftkv_stack"
)

// Costs (see the package documentation).
const (
	CallCost         = 10
	GrowBaseCost     = 100
	GrowPageCost     = 8192 // 64 KiB to zero, at BulkBytesPerFuel
	BulkBaseCost     = 10
	BulkBytesPerFuel = 8
)

// Options say what Instrument adds.
type Options struct {
	// Fuel injects the fuel counter (FuelExport), whose initial value is
	// InitialFuel: the budget of the module's start function, which runs
	// when the module is instantiated, before the host can set the counter.
	Fuel        bool
	InitialFuel uint64
	// StackSlots, if not 0, injects the call-stack budget (StackExport),
	// with this initial value; the host sets it again before each call.
	StackSlots uint64
	// MemoryPages, if not 0, caps the module's memory maximum.
	MemoryPages uint32
}

// FrameSlots is what a call to a function with params parameters and locals
// declared locals costs the call-stack budget: its locals plus a fixed
// overhead for the frame itself, in 8-byte slots.
func FrameSlots(params, locals int) uint64 { return 4 + uint64(params) + uint64(locals) }

// malformed is panicked by the decoding helpers and recovered by Instrument.
type malformed struct{ err error }

func failf(sentinel error, format string, args ...any) {
	panic(malformed{fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))})
}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// order is the position of each known section id in a module.
var order = [...]int{secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secGlobal: 6, secExport: 7, secStart: 8, secElement: 9, secDataCount: 10, secCode: 11, secData: 12}

type section struct {
	id   byte
	body []byte
}

type funcType struct{ params, results []byte }

// module is what Instrument needs to know about a module.
type module struct {
	sections      []section
	types         []funcType
	importedFuncs []uint32 // type index of each imported function
	importedGlobs uint32
	funcs         []uint32 // type index of each defined function
	globals       uint32   // defined globals
	exports       map[string]bool
	locals        uint64 // of the functions rewritten so far (MaxModuleLocals)
}

// Instrument returns wasm instrumented as opts says. It does not validate
// the module beyond what it decodes: the engine compiles and validates the
// result.
func Instrument(wasm []byte, opts Options) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, ok := r.(malformed)
			if !ok {
				panic(r)
			}
			out, err = nil, m.err
		}
	}()
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		failf(ErrMalformed, "missing the \\0asm header")
	}
	if v := wasm[4:8]; v[0] != 1 || v[1] != 0 || v[2] != 0 || v[3] != 0 {
		failf(ErrUnsupported, "binary format version %x, want 1", v)
	}
	m := parse(wasm[8:])
	if !opts.Fuel && opts.StackSlots == 0 && opts.MemoryPages == 0 {
		return wasm, nil
	}
	if opts.MemoryPages != 0 {
		if i := m.find(secMemory); i >= 0 {
			m.sections[i].body = clampMemory(m.sections[i].body, opts.MemoryPages)
		}
		if i := m.find(secTable); i >= 0 {
			m.sections[i].body = clampTables(m.sections[i].body)
		}
	}
	if opts.Fuel || opts.StackSlots != 0 {
		m.instrumentCode(opts)
	}
	size := 8
	for _, s := range m.sections {
		size += 1 + 5 + len(s.body)
	}
	out = make([]byte, 0, size)
	out = append(out, wasm[:8]...)
	for _, s := range m.sections {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, nil
}

func parse(b []byte) *module {
	m := &module{exports: map[string]bool{}}
	r := &reader{b: b}
	last := 0
	for !r.done() {
		id := r.byte()
		n := r.u32()
		body := r.bytes(n)
		if id != secCustom {
			if int(id) >= len(order) || order[id] == 0 {
				failf(ErrMalformed, "unknown section id %d", id)
			}
			if order[id] <= last {
				failf(ErrMalformed, "section %d out of order", id)
			}
			last = order[id]
		}
		m.sections = append(m.sections, section{id, body})
		br := &reader{b: body}
		switch id {
		case secType:
			for range br.u32() {
				if f := br.byte(); f != 0x60 {
					failf(ErrMalformed, "function type starts with 0x%02x", f)
				}
				params := br.bytes(br.u32())
				results := br.bytes(br.u32())
				m.types = append(m.types, funcType{params, results})
			}
		case secImport:
			for range br.u32() {
				br.name()
				br.name()
				switch kind := br.byte(); kind {
				case 0x00:
					m.importedFuncs = append(m.importedFuncs, br.u32())
				case 0x01:
					br.byte()
					br.limits()
				case 0x02:
					br.limits()
				case 0x03:
					br.byte()
					br.byte()
					m.importedGlobs++
				default:
					failf(ErrMalformed, "import kind 0x%02x", kind)
				}
			}
		case secFunction:
			n := br.u32()
			if n > MaxFunctions {
				failf(ErrUnsupported, "%d functions; the limit is %d", n, MaxFunctions)
			}
			for range n {
				m.funcs = append(m.funcs, br.u32())
			}
		case secGlobal:
			m.globals = br.u32()
		case secExport:
			for range br.u32() {
				m.exports[br.name()] = true
				br.byte()
				br.u32()
			}
		}
	}
	return m
}

func (m *module) find(id byte) int {
	for i, s := range m.sections {
		if s.id == id {
			return i
		}
	}
	return -1
}

// upsert returns the index of section id, inserting an empty one (a vector
// of 0 items) at its place if the module has none.
func (m *module) upsert(id byte) int {
	if i := m.find(id); i >= 0 {
		return i
	}
	at := len(m.sections)
	for i, s := range m.sections {
		if s.id != secCustom && order[s.id] > order[id] {
			at = i
			break
		}
	}
	m.sections = append(m.sections, section{})
	copy(m.sections[at+1:], m.sections[at:])
	m.sections[at] = section{id: id, body: []byte{0}}
	return at
}

// appendItems appends items to the vector that is the section's body.
func (m *module) appendItems(i int, items ...[]byte) {
	r := &reader{b: m.sections[i].body}
	n := r.u32()
	body := appendU32(nil, n+uint32(len(items)))
	body = append(body, r.b[r.p:]...)
	for _, it := range items {
		body = append(body, it...)
	}
	m.sections[i].body = body
}

func clampMemory(body []byte, pages uint32) []byte {
	r := &reader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	for range n {
		flag := r.byte()
		if flag > 1 {
			failf(ErrUnsupported, "memory limits flag 0x%02x (shared or 64-bit memory)", flag)
		}
		lo := r.u32()
		hi := pages
		if flag == 1 {
			hi = min(r.u32(), pages)
		}
		if lo > pages {
			failf(ErrMemory, "the module's memory starts at %d pages, the cap is %d", lo, pages)
		}
		out = append(out, 1)
		out = appendU32(out, lo)
		out = appendU32(out, hi)
	}
	if !r.done() {
		failf(ErrMalformed, "memory section has %d trailing bytes", len(r.b)-r.p)
	}
	return out
}

// clampTables clamps every table's maximum to MaxTableElements, and refuses
// more than MaxTables tables or one that starts larger.
func clampTables(body []byte) []byte {
	r := &reader{b: body}
	n := r.u32()
	if n > MaxTables {
		failf(ErrUnsupported, "%d tables; the limit is %d", n, MaxTables)
	}
	out := appendU32(nil, n)
	for range n {
		reftype, flag := r.byte(), r.byte()
		if flag > 1 {
			failf(ErrUnsupported, "table limits flag 0x%02x (shared or 64-bit table)", flag)
		}
		lo, hi := r.u32(), uint32(MaxTableElements)
		if flag == 1 {
			hi = min(r.u32(), hi)
		}
		if lo > MaxTableElements {
			failf(ErrUnsupported, "a table starts at %d elements; the limit is %d", lo, MaxTableElements)
		}
		out = append(out, reftype, 1)
		out = appendU32(out, lo)
		out = appendU32(out, hi)
	}
	if !r.done() {
		failf(ErrMalformed, "table section has %d trailing bytes", len(r.b)-r.p)
	}
	return out
}

// instrumentCode adds the globals and their exports and rewrites every
// function body.
func (m *module) instrumentCode(opts Options) {
	for _, name := range []string{FuelExport, StackExport} {
		if m.exports[name] {
			failf(ErrUnsupported, "the module exports %q, a name reserved for the host", name)
		}
	}
	g := globals{fuel: -1, stack: -1}
	next := m.importedGlobs + m.globals
	var newGlobals, newExports [][]byte
	addGlobal := func(name string, init uint64) int64 {
		// (global (mut i64) (i64.const init)) exported as name.
		gl := appendS64([]byte{0x7E, 0x01, 0x42}, int64(min(init, 1<<62)))
		newGlobals = append(newGlobals, append(gl, 0x0B))
		exp := appendName(nil, name)
		exp = append(exp, 0x03)
		newExports = append(newExports, appendU32(exp, next))
		next++
		return int64(next - 1)
	}
	if opts.Fuel {
		g.fuel = addGlobal(FuelExport, opts.InitialFuel)
	}
	if opts.StackSlots != 0 {
		g.stack = addGlobal(StackExport, opts.StackSlots)
	}
	if code := m.find(secCode); code >= 0 {
		body := m.rewriteCode(m.sections[code].body, g) // may add types
		m.sections[m.find(secCode)].body = body
	} else if len(m.funcs) != 0 {
		failf(ErrMalformed, "%d functions but no code section", len(m.funcs))
	}
	m.appendItems(m.upsert(secGlobal), newGlobals...)
	m.appendItems(m.upsert(secExport), newExports...)
}

// blockType returns the encoding of a block type whose params are none and
// results are those of function type t, adding a type if needed.
func (m *module) blockType(t uint32) []byte {
	res := m.types[t].results
	switch len(res) {
	case 0:
		return []byte{0x40}
	case 1:
		return []byte{res[0]}
	}
	for i, ft := range m.types {
		if len(ft.params) == 0 && string(ft.results) == string(res) {
			return appendS64(nil, int64(i))
		}
	}
	i := m.upsert(secType)
	it := []byte{0x60, 0x00}
	it = appendU32(it, uint32(len(res)))
	it = append(it, res...)
	m.appendItems(i, it)
	m.types = append(m.types, funcType{nil, res})
	return appendS64(nil, int64(len(m.types)-1))
}

package meter

import "slices"

// kind classifies the instructions that metering treats specially.
type kind uint8

const (
	kOther kind = iota // cost 1, no control flow
	kFree              // nop: cost 0
	kBlock
	kLoop
	kIf
	kElse
	kEnd
	kBr
	kBrIf
	kBrTable
	kReturn
	kUnreachable
	kCall
	kGrow     // memory.grow: pages on the stack
	kBulkMem  // memory.copy, memory.fill, memory.init: length on the stack
	kBulkElem // table.grow, table.fill, table.copy, table.init: count on the stack
)

// instr is one decoded instruction: its bytes are body[start:end].
type instr struct {
	start, end int32
	kind       kind
	label      uint32 // br, br_if: the label; br_table: index in labels of its first label
	nlabels    uint32 // br_table: number of labels, default included
}

// decoder splits a function body's expression into instructions. Its
// slices are reused from one function to the next.
type decoder struct {
	r      reader
	labels []uint32 // br_table labels of the body
	ins    []instr
	seg    []int64
	minOne []bool
	stack  []frame
	// nesting is the deepest nesting of blocks in the body (0: none).
	nesting int
	// brWork is the sum of the squares of the br_tables' label counts, of
	// the whole module (see MaxBrTableWork).
	brWork uint64
}

func (d *decoder) memarg() {
	align := d.r.u32()
	if align >= 64 {
		failf(ErrUnsupported, "memory argument alignment %d (multiple memories)", align)
	}
	d.r.u32()
}

func (d *decoder) blockType() {
	c := d.r.byte()
	switch c {
	case 0x40, 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F:
		return
	}
	d.r.p--
	if d.r.sleb(33) < 0 {
		failf(ErrMalformed, "block type 0x%02x", c)
	}
}

func (d *decoder) zero(what string) {
	if c := d.r.byte(); c != 0 {
		failf(ErrUnsupported, "%s with memory index byte 0x%02x", what, c)
	}
}

// simdNone are the SIMD (0xFD) opcodes above 0x0D without immediates, except
// the lane and memory ones, which next handles; 0 marks unassigned opcodes.
var simdNone = func() (t [256]bool) {
	for i := 0x0E; i <= 0xFF; i++ {
		t[i] = true
	}
	for i := 0x15; i <= 0x22; i++ { // extract/replace lane
		t[i] = false
	}
	for i := 0x54; i <= 0x5D; i++ { // load/store lane, load zero
		t[i] = false
	}
	for _, i := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2,
		0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} { // unassigned
		t[i] = false
	}
	return t
}()

// next decodes the instruction at the reader's position.
func (d *decoder) next() instr {
	in := instr{start: int32(d.r.p)}
	op := d.r.byte()
	switch {
	case op == 0x00:
		in.kind = kUnreachable
	case op == 0x01:
		in.kind = kFree
	case op == 0x02, op == 0x03, op == 0x04:
		in.kind = [...]kind{kBlock, kLoop, kIf}[op-0x02]
		d.blockType()
	case op == 0x05:
		in.kind = kElse
	case op == 0x0B:
		in.kind = kEnd
	case op == 0x0C, op == 0x0D:
		in.kind = kBr
		if op == 0x0D {
			in.kind = kBrIf
		}
		in.label = d.r.u32()
	case op == 0x0E:
		in.kind = kBrTable
		n := d.r.u32()
		if uint64(n) > uint64(len(d.r.b)-d.r.p) { // each label takes a byte at least
			failf(ErrMalformed, "br_table of %d labels at byte %d", n, in.start)
		}
		if n >= MaxBrTableLabels {
			failf(ErrUnsupported, "a br_table of %d labels; the limit is %d", n+1, MaxBrTableLabels)
		}
		if d.brWork += uint64(n+1) * uint64(n+1); d.brWork > MaxBrTableWork {
			failf(ErrUnsupported, "br_tables too long to compile in reasonable time (the sum of the squares of their label counts exceeds %d)", uint64(MaxBrTableWork))
		}
		in.label, in.nlabels = uint32(len(d.labels)), n+1
		for range n + 1 {
			d.labels = append(d.labels, d.r.u32())
		}
	case op == 0x0F:
		in.kind = kReturn
	case op == 0x10:
		in.kind = kCall
		d.r.u32()
	case op == 0x11:
		in.kind = kCall
		d.r.u32()
		d.r.u32()
	case op == 0x1A, op == 0x1B: // drop, select
	case op == 0x1C: // select t*
		for range d.r.u32() {
			d.r.byte()
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		d.r.u32()
	case op >= 0x28 && op <= 0x3E: // loads and stores
		d.memarg()
	case op == 0x3F:
		d.zero("memory.size")
	case op == 0x40:
		in.kind = kGrow
		d.zero("memory.grow")
	case op == 0x41:
		d.r.sleb(32)
	case op == 0x42:
		d.r.sleb(64)
	case op == 0x43:
		d.r.bytes(4)
	case op == 0x44:
		d.r.bytes(8)
	case op >= 0x45 && op <= 0xC4: // numeric, sign extension
	case op == 0xD0: // ref.null t
		d.r.byte()
	case op == 0xD1: // ref.is_null
	case op == 0xD2: // ref.func x
		d.r.u32()
	case op == 0xFC:
		switch sub := d.r.u32(); {
		case sub <= 7: // trunc_sat
		case sub == 8: // memory.init data 0
			in.kind = kBulkMem
			d.r.u32()
			d.zero("memory.init")
		case sub == 9, sub == 13: // data.drop, elem.drop
			d.r.u32()
		case sub == 10: // memory.copy 0 0
			in.kind = kBulkMem
			d.zero("memory.copy")
			d.zero("memory.copy")
		case sub == 11: // memory.fill 0
			in.kind = kBulkMem
			d.zero("memory.fill")
		case sub == 12, sub == 14: // table.init elem table, table.copy table table
			in.kind = kBulkElem
			d.r.u32()
			d.r.u32()
		case sub == 15, sub == 17: // table.grow, table.fill
			in.kind = kBulkElem
			d.r.u32()
		case sub == 16: // table.size
			d.r.u32()
		default:
			failf(ErrUnsupported, "opcode 0xFC %d at byte %d", sub, in.start)
		}
	case op == 0xFD:
		switch sub := d.r.u32(); {
		case sub <= 0x0B, sub == 0x5C, sub == 0x5D: // loads, store, load zero
			d.memarg()
		case sub == 0x0C, sub == 0x0D: // v128.const, i8x16.shuffle
			d.r.bytes(16)
		case sub >= 0x15 && sub <= 0x22: // extract/replace lane
			d.r.byte()
		case sub >= 0x54 && sub <= 0x5B: // load/store lane
			d.memarg()
			d.r.byte()
		case sub <= 0xFF && simdNone[sub]:
		default:
			failf(ErrUnsupported, "opcode 0xFD %d at byte %d", sub, in.start)
		}
	default:
		failf(ErrUnsupported, "opcode 0x%02X at byte %d", op, in.start)
	}
	in.end = int32(d.r.p)
	return in
}

// cost is an instruction's static cost.
func cost(k kind) int64 {
	switch k {
	case kFree, kBlock, kLoop, kElse, kEnd:
		return 0
	case kCall:
		return CallCost
	case kGrow:
		return GrowBaseCost
	case kBulkMem, kBulkElem:
		return BulkBaseCost
	}
	return 1
}

// globals are the indexes of the injected globals, -1 when absent.
type globals struct{ fuel, stack int64 }

// rewriteCode rewrites the code section.
func (m *module) rewriteCode(body []byte, g globals) []byte {
	r := &reader{b: body}
	n := r.u32()
	if int(n) != len(m.funcs) {
		failf(ErrMalformed, "%d function bodies for %d functions", n, len(m.funcs))
	}
	out := appendU32(make([]byte, 0, len(body)+len(body)/4), n)
	var fb []byte
	var d decoder
	var work uint64 // of the nesting: see MaxNestingWork
	for i := range n {
		size := r.u32()
		if size > MaxFunctionBytes {
			failf(ErrUnsupported, "function %d's body is %d bytes; the limit is %d", i, size, MaxFunctionBytes)
		}
		code := r.bytes(size)
		t := m.funcs[i]
		if int(t) >= len(m.types) {
			failf(ErrMalformed, "function %d has type %d of %d", i, t, len(m.types))
		}
		fb = m.rewriteBody(fb[:0], code, t, g, &d)
		if work += uint64(d.nesting) * uint64(d.nesting); work > MaxNestingWork {
			failf(ErrUnsupported, "the functions up to %d nest blocks too deep to compile in reasonable time "+
				"(the sum of the squares of their deepest nestings exceeds %d)", i, MaxNestingWork)
		}
		out = appendU32(out, uint32(len(fb)))
		out = append(out, fb...)
	}
	if !r.done() {
		failf(ErrMalformed, "code section has %d trailing bytes", len(r.b)-r.p)
	}
	return out
}

// frame is a control frame while segments are computed.
type frame struct {
	kind     kind // kBlock, kLoop, kIf, or kEnd for the function
	resume   int32
	targeted bool
}

// rewriteBody appends the instrumented version of one function body (locals
// and expression) of type t to out.
func (m *module) rewriteBody(out, code []byte, t uint32, g globals, d *decoder) []byte {
	*d = decoder{r: reader{b: code}, labels: d.labels[:0], ins: d.ins[:0], seg: d.seg[:0], minOne: d.minOne[:0], stack: d.stack[:0], brWork: d.brWork}
	r := &d.r
	// Locals: copied, then one i64 and one i32 scratch local appended.
	groups := r.u32()
	localsStart := r.p
	nlocals := uint64(0)
	for range groups {
		nlocals += uint64(r.u32())
		r.byte()
		if nlocals > 50000 {
			failf(ErrUnsupported, "more than 50000 locals")
		}
	}
	if m.locals += nlocals; m.locals > MaxModuleLocals {
		failf(ErrUnsupported, "more than %d locals in all functions", MaxModuleLocals)
	}
	localsEnd := r.p
	params := len(m.types[t].params)
	tmp64 := uint32(params) + uint32(nlocals)
	tmp32 := tmp64 + 1
	out = appendU32(out, groups+2)
	out = append(out, code[localsStart:localsEnd]...)
	out = append(out, 1, 0x7E, 1, 0x7F)

	// Decode the expression.
	ins := d.ins
	for depth := 1; depth > 0; {
		in := d.next()
		switch in.kind {
		case kBlock, kLoop, kIf:
			depth++
			if d.nesting = max(d.nesting, depth-1); d.nesting > MaxNesting {
				failf(ErrUnsupported, "a function nests blocks more than %d deep", MaxNesting)
			}
		case kEnd:
			depth--
		}
		ins = append(ins, in)
	}
	if !r.done() {
		failf(ErrMalformed, "function body has %d bytes after its end", len(code)-r.p)
	}
	d.ins = ins

	// Segments: seg[k] is the cost charged just before instruction k
	// (-1: no charge there).
	seg := slices.Grow(d.seg[:0], len(ins))[:len(ins)]
	for k := range seg {
		seg[k] = -1
	}
	minOne := slices.Grow(d.minOne[:0], len(ins))[:len(ins)]
	clear(minOne)
	d.seg, d.minOne = seg, minOne
	cur := int32(0)
	seg[0], minOne[0] = 0, true
	newSeg := func(k int, one bool) int32 {
		if k < len(ins) {
			seg[k], minOne[k] = 0, one
			return int32(k)
		}
		return -1
	}
	stack := append(d.stack[:0], frame{kind: kEnd, resume: -1})
	defer func() { d.stack = stack[:0] }()
	target := func(l uint32) {
		if int(l) >= len(stack) {
			failf(ErrMalformed, "branch to label %d at depth %d", l, len(stack))
		}
		stack[len(stack)-1-int(l)].targeted = true
	}
	for k, in := range ins {
		if cur >= 0 {
			seg[cur] += cost(in.kind)
		}
		switch in.kind {
		case kBlock:
			stack = append(stack, frame{kind: kBlock, resume: cur})
		case kLoop:
			stack = append(stack, frame{kind: kLoop, resume: cur})
			cur = newSeg(k+1, true)
		case kIf:
			stack = append(stack, frame{kind: kIf, resume: cur})
			cur = newSeg(k+1, false)
		case kElse:
			if stack[len(stack)-1].kind != kIf {
				failf(ErrMalformed, "else outside of an if")
			}
			cur = newSeg(k+1, false)
		case kEnd:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			switch {
			case len(stack) == 0:
			case f.targeted && f.kind != kLoop:
				cur = newSeg(k+1, false)
			default:
				cur = f.resume
			}
		case kBr:
			target(in.label)
			cur = -1
		case kBrIf:
			target(in.label)
		case kBrTable:
			for _, l := range d.labels[in.label : in.label+in.nlabels] {
				target(l)
			}
			cur = -1
		case kReturn, kUnreachable:
			cur = -1
		}
	}

	// Emit.
	var frameSlots uint64
	if g.stack >= 0 {
		frameSlots = FrameSlots(params, int(nlocals))
		out = emitCharge(out, g.stack, int64(frameSlots), tmp64)
		out = append(out, 0x02)
		out = append(out, m.blockType(t)...)
	}
	last := len(ins) - 1
	for k, in := range ins {
		if c := seg[k]; g.fuel >= 0 && c >= 0 {
			if c == 0 && minOne[k] {
				c = 1
			}
			switch {
			case minOne[k]:
				out = emitCharge(out, g.fuel, c, tmp64)
			case c > 0:
				out = emitSub(out, g.fuel, c)
			}
		}
		if g.fuel >= 0 {
			switch in.kind {
			case kGrow:
				out = emitDynamic(out, g.fuel, tmp64, tmp32, 0x7E, GrowPageCost)
			case kBulkMem:
				out = emitDynamic(out, g.fuel, tmp64, tmp32, 0x88, 3) // n >> 3: BulkBytesPerFuel
			case kBulkElem:
				out = emitDynamic(out, g.fuel, tmp64, tmp32, 0x7E, 1)
			}
		}
		if g.stack >= 0 && (in.kind == kReturn || k == last) {
			if k == last {
				out = append(out, 0x0B) // end of the wrapping block
			}
			// global.set S (global.get S + frame)
			out = append(out, 0x23)
			out = appendU32(out, uint32(g.stack))
			out = append(out, 0x42)
			out = appendS64(out, int64(frameSlots))
			out = append(out, 0x7C, 0x24)
			out = appendU32(out, uint32(g.stack))
		}
		out = append(out, code[in.start:in.end]...)
	}
	return out
}

// emitCharge appends: subtract c from global gi; unreachable if it is
// negative. tmp is an i64 local.
func emitCharge(out []byte, gi, c int64, tmp uint32) []byte {
	out = append(out, 0x23)
	out = appendU32(out, uint32(gi))
	out = append(out, 0x42)
	out = appendS64(out, c)
	out = append(out, 0x7D) // i64.sub
	return emitStoreCheck(out, gi, tmp)
}

// emitSub appends: subtract c from global gi, without a check (the next
// loop start or function entry checks).
func emitSub(out []byte, gi, c int64) []byte {
	out = append(out, 0x23)
	out = appendU32(out, uint32(gi))
	out = append(out, 0x42)
	out = appendS64(out, c)
	out = append(out, 0x7D, 0x24) // i64.sub, global.set
	return appendU32(out, uint32(gi))
}

// emitStoreCheck appends, with the new counter value on the stack:
// local.tee tmp, global.set gi, and unreachable if tmp < 0.
func emitStoreCheck(out []byte, gi int64, tmp uint32) []byte {
	out = append(out, 0x22)
	out = appendU32(out, tmp)
	out = append(out, 0x24)
	out = appendU32(out, uint32(gi))
	out = append(out, 0x20)
	out = appendU32(out, tmp)
	out = append(out, 0x42, 0x00, 0x53, 0x04, 0x40, 0x00, 0x0B) // i64.const 0, i64.lt_s, if, unreachable, end
	return out
}

// emitDynamic appends the run-time charge of an instruction whose top
// operand (an i32) is a count: the fuel global is charged count*k (op
// 0x7E, i64.mul) or count>>k (op 0x88, i64.shr_u). The operand stays on the
// stack.
func emitDynamic(out []byte, gi int64, tmp64, tmp32 uint32, op byte, k int64) []byte {
	out = append(out, 0x22) // local.tee tmp32
	out = appendU32(out, tmp32)
	out = append(out, 0x23)
	out = appendU32(out, uint32(gi))
	out = append(out, 0x20)
	out = appendU32(out, tmp32)
	out = append(out, 0xAD) // i64.extend_i32_u
	if !(op == 0x7E && k == 1) {
		out = append(out, 0x42)
		out = appendS64(out, k)
		out = append(out, op)
	}
	out = append(out, 0x7D) // i64.sub
	return emitStoreCheck(out, gi, tmp64)
}

package abi

import (
	"encoding"
	"encoding/binary"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The fast path of Unmarshal. msgpack/v5 decodes through a chain of
// reflection and io.Reader calls per byte, which is slow natively and very
// expensive in fuel inside a plugin (a 62-byte record cost some 42,000
// instructions). Unmarshal first tries a decoder driven by a plan computed
// once per Go type, reading the validated bytes directly.
//
// The fast path never decides an error and never decides a result msgpack/v5
// would not: it handles only the common shapes (a struct decoded from a map
// with string keys, integers, strings, bools, byte slices, slices and
// pointers of those), decodes only into a zero value, and gives up on
// anything else, out-of-range integers included; Unmarshal then zeroes the
// value and runs msgpack/v5 as before, whose answer, error or not, is the
// answer. Types with their own codec (msgpack.CustomDecoder,
// msgpack.Unmarshaler, encoding.BinaryUnmarshaler or TextUnmarshaler, on the
// type or its pointer), maps, interfaces, floats, arrays, embedded fields and
// struct tags with options other than omitempty always take msgpack/v5's
// path. (A decoder registered with msgpack.Register for a struct or basic
// type is not seen by the fast path: implement msgpack.CustomDecoder instead.)
// FuzzUnmarshalFast checks that both paths agree.

type planKind uint8

const (
	planBool planKind = iota + 1
	planInt
	planUint
	planString
	planBytes       // a slice whose elements are of kind uint8
	planStringSlice // []string, which msgpack/v5 decodes its own way
	planSlice
	planPtr
	planStruct
)

type decPlan struct {
	kind   planKind
	typ    reflect.Type
	size   uintptr // the type's size in bytes
	bits   uint    // planInt, planUint: the type's size in bits
	elem   *decPlan
	fields []decField // planStruct
}

type decField struct {
	name   string
	offset uintptr
	plan   *decPlan
}

var (
	decPlans   atomic.Pointer[map[reflect.Type]*decPlan] // nil plan: unsupported
	decPlansMu sync.Mutex

	customDecoderType     = reflect.TypeFor[msgpack.CustomDecoder]()
	unmarshalerType       = reflect.TypeFor[msgpack.Unmarshaler]()
	binaryUnmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textUnmarshalerType   = reflect.TypeFor[encoding.TextUnmarshaler]()
	stringType            = reflect.TypeFor[string]()
)

// planOf returns the plan of t, or nil if the fast path does not handle t.
// The plans are a map replaced whole when a type is added (a handful of
// types per program): a lookup is a plain map read, several times cheaper in
// fuel than a sync.Map's.
func planOf(t reflect.Type) *decPlan {
	if p, ok := (*decPlans.Load())[t]; ok {
		return p
	}
	decPlansMu.Lock()
	defer decPlansMu.Unlock()
	old := *decPlans.Load()
	if p, ok := old[t]; ok {
		return p
	}
	building := map[reflect.Type]*decPlan{}
	p := buildPlan(t, old, building)
	plans := make(map[reflect.Type]*decPlan, len(old)+len(building)+1)
	for t, q := range old {
		plans[t] = q
	}
	for t, q := range building {
		if p == nil {
			q = nil // a type that refers to an unsupported one, through a cycle
		}
		plans[t] = q
	}
	plans[t] = p
	decPlans.Store(&plans)
	return p
}

func init() { decPlans.Store(&map[reflect.Type]*decPlan{}) }

func hasOwnDecoder(t reflect.Type) bool {
	for _, i := range []reflect.Type{customDecoderType, unmarshalerType, binaryUnmarshalerType, textUnmarshalerType} {
		if t.Implements(i) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(i)) {
			return true
		}
	}
	return false
}

func buildPlan(t reflect.Type, known, building map[reflect.Type]*decPlan) *decPlan {
	if p, ok := known[t]; ok {
		return p
	}
	if p, ok := building[t]; ok {
		return p
	}
	if hasOwnDecoder(t) {
		return nil
	}
	p := &decPlan{typ: t, size: t.Size()}
	switch t.Kind() {
	case reflect.Bool:
		p.kind = planBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.kind, p.bits = planInt, uint(t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		p.kind, p.bits = planUint, uint(t.Bits())
	case reflect.String:
		p.kind = planString
	case reflect.Slice:
		switch {
		case t.Elem().Kind() == reflect.Uint8:
			p.kind = planBytes
		case t.Elem() == stringType:
			p.kind = planStringSlice
		default:
			p.kind = planSlice
			building[t] = p
			if p.elem = buildPlan(t.Elem(), known, building); p.elem == nil {
				return nil
			}
		}
	case reflect.Pointer:
		p.kind = planPtr
		building[t] = p
		if p.elem = buildPlan(t.Elem(), known, building); p.elem == nil {
			return nil
		}
	case reflect.Struct:
		p.kind = planStruct
		building[t] = p
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Name == "_msgpack" && f.Tag == `msgpack:",as_array"` {
				continue // it changes how the struct encodes, not how it decodes
			}
			if f.Anonymous || f.Name == "_msgpack" {
				return nil
			}
			tag, ok := f.Tag.Lookup("msgpack")
			name, opts, _ := strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if !f.IsExported() {
				continue
			}
			if ok && (name == "-" || strings.ContainsAny(name, "'\"=\\ ") || (opts != "" && opts != "omitempty")) {
				return nil
			}
			if name == "" {
				name = f.Name
			}
			for _, g := range p.fields {
				if g.name == name {
					return nil
				}
			}
			fp := buildPlan(f.Type, known, building)
			if fp == nil {
				return nil
			}
			p.fields = append(p.fields, decField{name: name, offset: f.Offset, plan: fp})
		}
	default:
		return nil
	}
	return p
}

// fastUnmarshal decodes data, which Validate accepted, into v if the fast
// path can, and reports whether it did. If it did not, *v may have been
// written to: the caller zeroes it.
func fastUnmarshal(data []byte, v any) (handled, wrote bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return false, false
	}
	e := rv.Elem()
	p := planOf(e.Type())
	if p == nil || p.kind == planPtr || !e.IsZero() {
		return false, false
	}
	d := fastDecoder{b: data}
	return d.value(p, rv.UnsafePointer()) && d.p == len(data), true
}

type fastDecoder struct {
	b []byte
	p int
}

// value decodes the next value into the variable at ptr, of the type p
// describes; false: give up. It writes through unsafe pointers at the
// offsets reflect gave the plan: going through reflect.Value for every field
// cost more than the decoding itself.
func (d *fastDecoder) value(p *decPlan, ptr unsafe.Pointer) bool {
	if d.p >= len(d.b) {
		return false
	}
	c := d.b[d.p]
	switch p.kind {
	case planBool:
		switch c {
		case msgpcode.True:
			*(*bool)(ptr) = true
		case msgpcode.False, msgpcode.Nil:
			*(*bool)(ptr) = false
		default:
			return false
		}
		d.p++
		return true
	case planInt, planUint:
		n, u, neg, ok := d.int()
		if !ok {
			return false
		}
		if p.kind == planUint {
			if neg || (p.bits < 64 && u>>p.bits != 0) {
				return false
			}
		} else if !neg {
			if u>>(p.bits-1) != 0 {
				return false
			}
		} else if p.bits < 64 && n < -1<<(p.bits-1) {
			return false
		} else {
			u = uint64(n)
		}
		switch p.bits {
		case 8:
			*(*uint8)(ptr) = uint8(u)
		case 16:
			*(*uint16)(ptr) = uint16(u)
		case 32:
			*(*uint32)(ptr) = uint32(u)
		default:
			*(*uint64)(ptr) = u
		}
		return true
	case planString:
		b, _, ok := d.bytes()
		if !ok {
			return false
		}
		if len(b) == 0 {
			*(*string)(ptr) = ""
		} else {
			*(*string)(ptr) = string(b)
		}
		return true
	case planBytes:
		b, isNil, ok := d.bytes()
		if !ok {
			return false
		}
		dst := (*[]byte)(ptr)
		if isNil {
			*dst = nil
			return true
		}
		// As msgpack/v5's readN: reuse the slice's room, a fresh non-nil
		// slice for an empty value.
		old := *dst
		var out []byte
		switch {
		case old == nil:
			out = make([]byte, len(b))
		case len(b) <= cap(old):
			out = old[:len(b)]
		default:
			return false
		}
		copy(out, b)
		*dst = out
		return true
	case planStringSlice:
		n, isNil, ok := d.arrayLen()
		if !ok {
			return false
		}
		if isNil {
			return true // msgpack/v5 leaves a []string as it was
		}
		ss := make([]string, n)
		for i := range ss {
			b, _, ok := d.bytes()
			if !ok {
				return false
			}
			if len(b) > 0 {
				ss[i] = string(b)
			}
		}
		*(*[]string)(ptr) = ss
		return true
	case planSlice:
		n, isNil, ok := d.arrayLen()
		if !ok {
			return false
		}
		dst := reflect.NewAt(p.typ, ptr).Elem()
		if isNil {
			dst.SetZero()
			return true
		}
		if !dst.IsNil() {
			return false
		}
		s := reflect.MakeSlice(p.typ, n, n)
		base, size := s.UnsafePointer(), p.elem.size
		for i := range n {
			if !d.value(p.elem, unsafe.Add(base, uintptr(i)*size)) {
				return false
			}
		}
		dst.Set(s)
		return true
	case planPtr:
		dst := (*unsafe.Pointer)(ptr)
		if c == msgpcode.Nil {
			d.p++
			*dst = nil
			return true
		}
		if *dst == nil {
			*dst = reflect.New(p.elem.typ).UnsafePointer()
		}
		return d.value(p.elem, *dst)
	case planStruct:
		var n int
		switch {
		case msgpcode.IsFixedMap(c):
			n = int(c & 0x0f)
			d.p++
		case c == msgpcode.Map16 && d.p+3 <= len(d.b):
			n = int(binary.BigEndian.Uint16(d.b[d.p+1:]))
			d.p += 3
		case c == msgpcode.Map32 && d.p+5 <= len(d.b):
			n = int(binary.BigEndian.Uint32(d.b[d.p+1:]))
			d.p += 5
		default:
			return d.structArray(p, ptr)
		}
		for range n {
			key, isNil, ok := d.bytes()
			if !ok || isNil {
				return false
			}
			f := p.field(key)
			if f == nil {
				if !d.skip() {
					return false
				}
				continue
			}
			if !d.value(f.plan, unsafe.Add(ptr, f.offset)) {
				return false
			}
		}
		return true
	}
	return false
}

// structArray decodes a struct from an array of its fields' values, in
// order, as msgpack/v5 does whether the struct is as_array or not.
func (d *fastDecoder) structArray(p *decPlan, ptr unsafe.Pointer) bool {
	n, isNil, ok := d.arrayLen()
	if !ok || isNil || n == 0 || n != len(p.fields) {
		return false
	}
	for i := range p.fields {
		if !d.value(p.fields[i].plan, unsafe.Add(ptr, p.fields[i].offset)) {
			return false
		}
	}
	return true
}

func (p *decPlan) field(name []byte) *decField {
	for i := range p.fields {
		if p.fields[i].name == string(name) {
			return &p.fields[i]
		}
	}
	return nil
}

// int reads an integer (nil: 0): neg reports a negative one, in n, else it
// is u.
func (d *fastDecoder) int() (n int64, u uint64, neg, ok bool) {
	b := d.b[d.p:]
	c := b[0]
	size := 1
	switch {
	case c <= msgpcode.PosFixedNumHigh:
		u = uint64(c)
	case c >= msgpcode.NegFixedNumLow:
		n = int64(int8(c))
	case c == msgpcode.Nil:
	case c == msgpcode.Uint8 && len(b) >= 2:
		u, size = uint64(b[1]), 2
	case c == msgpcode.Uint16 && len(b) >= 3:
		u, size = uint64(binary.BigEndian.Uint16(b[1:])), 3
	case c == msgpcode.Uint32 && len(b) >= 5:
		u, size = uint64(binary.BigEndian.Uint32(b[1:])), 5
	case c == msgpcode.Uint64 && len(b) >= 9:
		u, size = binary.BigEndian.Uint64(b[1:]), 9
	case c == msgpcode.Int8 && len(b) >= 2:
		n, size = int64(int8(b[1])), 2
	case c == msgpcode.Int16 && len(b) >= 3:
		n, size = int64(int16(binary.BigEndian.Uint16(b[1:]))), 3
	case c == msgpcode.Int32 && len(b) >= 5:
		n, size = int64(int32(binary.BigEndian.Uint32(b[1:]))), 5
	case c == msgpcode.Int64 && len(b) >= 9:
		n, size = int64(binary.BigEndian.Uint64(b[1:])), 9
	default:
		return 0, 0, false, false
	}
	d.p += size
	if n >= 0 {
		if u == 0 {
			u = uint64(n)
		}
		return 0, u, false, true
	}
	return n, 0, true, true
}

// bytes reads a str or bin (or nil) and returns its content, which aliases
// the input.
func (d *fastDecoder) bytes() (b []byte, isNil, ok bool) {
	in := d.b[d.p:]
	c := in[0]
	var n, h int
	switch {
	case msgpcode.IsFixedString(c):
		n, h = int(c&msgpcode.FixedStrMask), 1
	case c == msgpcode.Nil:
		d.p++
		return nil, true, true
	case (c == msgpcode.Str8 || c == msgpcode.Bin8) && len(in) >= 2:
		n, h = int(in[1]), 2
	case (c == msgpcode.Str16 || c == msgpcode.Bin16) && len(in) >= 3:
		n, h = int(binary.BigEndian.Uint16(in[1:])), 3
	case (c == msgpcode.Str32 || c == msgpcode.Bin32) && len(in) >= 5:
		n, h = int(binary.BigEndian.Uint32(in[1:])), 5
	default:
		return nil, false, false
	}
	if n > len(in)-h {
		return nil, false, false
	}
	d.p += h + n
	return in[h : h+n : h+n], false, true
}

// arrayLen reads an array header (or nil).
func (d *fastDecoder) arrayLen() (n int, isNil, ok bool) {
	in := d.b[d.p:]
	c := in[0]
	switch {
	case msgpcode.IsFixedArray(c):
		d.p++
		return int(c & 0x0f), false, true
	case c == msgpcode.Nil:
		d.p++
		return 0, true, true
	case c == msgpcode.Array16 && len(in) >= 3:
		d.p += 3
		return int(binary.BigEndian.Uint16(in[1:])), false, true
	case c == msgpcode.Array32 && len(in) >= 5:
		d.p += 5
		return int(binary.BigEndian.Uint32(in[1:])), false, true
	}
	return 0, false, false
}

// skip passes over the next value, which Validate checked.
func (d *fastDecoder) skip() bool {
	end, err := skipValue(d.b, d.p)
	if err != nil {
		return false
	}
	d.p = end
	return true
}

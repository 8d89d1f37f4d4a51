package sdk

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

// The SDK's one codec for structured data: MsgPack with
// github.com/vmihailenco/msgpack/v5, the library of abi.Marshal and
// abi.Unmarshal, which the SDK links anyway for the ABI's own messages, so a
// plugin pays no extra size for it.
//
// Over HTTP and the CLI a command or query is always one MsgPack value: a
// JSON body is converted to the equivalent MsgPack (object → map, integer →
// int, string → str, {"$b64": …} → bin), and a plugin's result is rendered
// back from MsgPack to JSON. So a plugin's commands are MsgPack maps, and its
// results must be MsgPack too: Result and the Router encode them.
//
// Struct fields are named by their `msgpack:"name"` tag (else the Go field
// name, case-sensitive); `msgpack:"name,omitempty"` drops a zero value;
// unknown fields in the input are ignored; a str decodes into a []byte and
// any integer encoding into any integer type that holds its value, while an
// integer the type cannot hold (-5 into a uint64, 300 into a uint8) fails
// the decoding, a bad_request from Decode, instead of being truncated. Decoding
// checks the input first (abi.Validate), so a malformed or hostile command
// cannot make the decoder allocate more than the input's size.

// Marshal encodes v as MsgPack, integers in their shortest form (5 is the
// one byte 0x05 whatever its Go type) and the keys of Go maps sorted, so
// that the same value encodes to the same bytes on every node (Go
// randomises map iteration; a stored value that differed between replicas
// would make their state digests differ).
func Marshal(v any) ([]byte, error) {
	if b, ok := fastMarshal(v); ok {
		return b, nil
	}
	return marshalSlow(v)
}

// marshalSlow is Marshal with msgpack/v5 and canonical.
func marshalSlow(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return canonical(buf.Bytes())
}

// Unmarshal decodes the MsgPack value data into v (a pointer). The input must
// be exactly one well-formed value.
func Unmarshal(data []byte, v any) error { return abi.Unmarshal(data, v) }

// Result encodes v as a plugin result: MsgPack, which the HTTP API and the
// CLI render as JSON. Return it from Apply or Query:
//
//	return sdk.Result(map[string]any{"count": n})
//
// An encoding failure is reported as abi.CodeInternal. A nil v encodes as
// MsgPack nil (JSON null).
func Result(v any) ([]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, Errorf(abi.CodeInternal, "encoding the result: %v", err)
	}
	return b, nil
}

// Decode decodes a command or query (MsgPack) into a T. A malformed input,
// or one of the wrong shape for T, is an *abi.Error with CodeBadRequest that
// says what was expected.
func Decode[T any](data []byte) (T, error) {
	var v T
	if len(data) == 0 {
		return v, Errorf(abi.CodeBadRequest, "empty input: expected one MsgPack value (a JSON body is converted to one)")
	}
	if err := abi.Unmarshal(data, &v); err != nil {
		var zero T
		if errors.Is(err, abi.ErrMalformed) {
			return zero, Errorf(abi.CodeBadRequest, "malformed MsgPack: %v", err)
		}
		return zero, Errorf(abi.CodeBadRequest, "bad input for %T: %v", v, err)
	}
	return v, nil
}

// BadRequest returns an *abi.Error with abi.CodeBadRequest: a malformed
// command or query, an invalid argument.
func BadRequest(format string, args ...any) error {
	return Errorf(abi.CodeBadRequest, format, args...)
}

// Ensure returns nil if cond holds, else BadRequest(format, args...): the
// rules of a request's Check method, one line each (CosmWasm's ensure!).
// The message is formatted only when cond fails.
//
//	func (r transferReq) Check() error {
//		return sdk.Ensure(r.Amount > 0, "amount must be positive, not %d", r.Amount)
//	}
func Ensure(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return BadRequest(format, args...)
}

// NotFound returns an *abi.Error with abi.CodeNotFound.
func NotFound(format string, args ...any) error {
	return Errorf(abi.CodeNotFound, format, args...)
}

// Conflict returns an *abi.Error with abi.CodeConflict: a precondition does
// not hold (the object exists, the version differs).
func Conflict(format string, args ...any) error {
	return Errorf(abi.CodeConflict, format, args...)
}

// quote bounds a client-supplied string in an error message.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

// The fast path of Marshal. msgpack/v5 followed by canonical costs some
// 65,000 fuel for a seven-field struct inside a plugin (the encoder's
// reflection and io.Writer calls, then canonical parses the result again and
// sorts every map). Marshal first tries an encoder driven by a plan computed
// once per Go type, which writes the canonical form directly: a struct's
// fields in the order canonical would sort them to (by name, bytewise),
// integers in their shortest form. It handles structs (as maps, or arrays
// for ",as_array"), integers, strings, bools, byte slices, slices and
// pointers of those, with omitempty on any but structs; any other type
// (maps, interfaces, floats, arrays, types with their own encoder, embedded
// fields, other tag options, omitempty on a type with an IsZero method)
// takes msgpack/v5's path, as before. TestMarshalFastMatchesSlow and
// FuzzMarshalFast check that both paths give the same bytes.

type encKind uint8

const (
	encBool encKind = iota + 1
	encInt
	encUint
	encString
	encBytes // a slice whose elements are of kind uint8
	encSlice
	encPtr
	encStruct
	encArrayStruct // a struct with `_msgpack struct{} `msgpack:",as_array"``
)

type encPlan struct {
	kind   encKind
	size   uintptr // the type's size in bytes
	elem   *encPlan
	fields []encField // in canonical order (encStruct) or declaration order (encArrayStruct)
}

type encField struct {
	name      string
	key       []byte // the name's MsgPack encoding
	index     int
	offset    uintptr
	omitEmpty bool
	plan      *encPlan
}

var (
	encPlans   atomic.Pointer[map[reflect.Type]*encPlan] // nil plan: unsupported
	encPlansMu sync.Mutex

	customEncoderType   = reflect.TypeFor[msgpack.CustomEncoder]()
	marshalerType       = reflect.TypeFor[msgpack.Marshaler]()
	binaryMarshalerType = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	isZeroerType        = reflect.TypeFor[interface{ IsZero() bool }]()
)

// encPlanOf returns the plan of t, or nil if the fast path does not handle
// t. The plans are a map replaced whole when a type is added: a lookup is a
// plain map read, several times cheaper in fuel than a sync.Map's.
func encPlanOf(t reflect.Type) *encPlan {
	if p, ok := (*encPlans.Load())[t]; ok {
		return p
	}
	encPlansMu.Lock()
	defer encPlansMu.Unlock()
	old := *encPlans.Load()
	if p, ok := old[t]; ok {
		return p
	}
	building := map[reflect.Type]*encPlan{}
	p := buildEncPlan(t, old, building)
	plans := make(map[reflect.Type]*encPlan, len(old)+len(building)+1)
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
	encPlans.Store(&plans)
	return p
}

func init() { encPlans.Store(&map[reflect.Type]*encPlan{}) }

func hasOwnEncoder(t reflect.Type) bool {
	for _, i := range []reflect.Type{customEncoderType, marshalerType, binaryMarshalerType, textMarshalerType} {
		if t.Implements(i) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(i)) {
			return true
		}
	}
	return false
}

func buildEncPlan(t reflect.Type, known, building map[reflect.Type]*encPlan) *encPlan {
	if p, ok := known[t]; ok {
		return p
	}
	if p, ok := building[t]; ok {
		return p
	}
	if hasOwnEncoder(t) {
		return nil
	}
	p := &encPlan{size: t.Size()}
	switch t.Kind() {
	case reflect.Bool:
		p.kind = encBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.kind = encInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		p.kind = encUint
	case reflect.String:
		p.kind = encString
	case reflect.Slice, reflect.Pointer:
		p.kind = encPtr
		if t.Kind() == reflect.Slice {
			p.kind = encSlice
			if t.Elem().Kind() == reflect.Uint8 {
				p.kind = encBytes
				break
			}
		}
		building[t] = p
		if p.elem = buildEncPlan(t.Elem(), known, building); p.elem == nil {
			return nil
		}
	case reflect.Struct:
		p.kind = encStruct
		building[t] = p
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Name == "_msgpack" && f.Tag == `msgpack:",as_array"` {
				p.kind = encArrayStruct
				continue
			}
			if f.Anonymous || f.Name == "_msgpack" {
				return nil
			}
			tag, ok := f.Tag.Lookup("msgpack")
			if tag == "-" || !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if ok && (name == "-" || strings.ContainsAny(name, "'\"=\\ ") || (opts != "" && opts != "omitempty")) {
				return nil
			}
			if name == "" {
				name = f.Name
			}
			if slicesContains(names, name) {
				return nil
			}
			names = append(names, name)
			omit := opts == "omitempty"
			if omit && (f.Type.Kind() == reflect.Struct || f.Type.Implements(isZeroerType)) {
				return nil // msgpack/v5's emptiness of these is its own
			}
			fp := buildEncPlan(f.Type, known, building)
			if fp == nil {
				return nil
			}
			key := appendStrHeader(nil, len(name))
			p.fields = append(p.fields, encField{name: name, key: append(key, name...), index: i, offset: f.Offset, omitEmpty: omit, plan: fp})
		}
		if p.kind == encStruct {
			sort.SliceStable(p.fields, func(i, j int) bool { return p.fields[i].name < p.fields[j].name })
		}
	default:
		return nil
	}
	return p
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// fastMarshal encodes v if the fast path handles its type.
func fastMarshal(v any) ([]byte, bool) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return nil, false
	}
	p := encPlanOf(rv.Type())
	if p == nil {
		return nil, false
	}
	b := make([]byte, 0, 128)
	if (p.kind == encStruct || p.kind == encArrayStruct) && p.size > unsafe.Sizeof(uintptr(0)) {
		// A struct larger than a pointer is held by an interface through a
		// pointer to it (the interface's second word; only pointer-shaped
		// types, one word long, are held in the word itself): read it there
		// rather than field by field through reflect.
		return appendAt(b, p, (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1]), true
	}
	return appendValue(b, p, rv), true
}

func appendValue(b []byte, p *encPlan, v reflect.Value) []byte {
	switch p.kind {
	case encBool:
		if v.Bool() {
			return append(b, 0xc3)
		}
		return append(b, 0xc2)
	case encInt:
		return appendInt(b, v.Int())
	case encUint:
		return appendUint(b, v.Uint())
	case encString:
		s := v.String()
		return append(appendStrHeader(b, len(s)), s...)
	case encBytes:
		if v.IsNil() {
			return append(b, 0xc0)
		}
		return appendBin(b, v.Bytes())
	case encSlice:
		if v.IsNil() {
			return append(b, 0xc0)
		}
		return appendElems(b, p.elem, v.UnsafePointer(), v.Len())
	case encPtr:
		if v.IsNil() {
			return append(b, 0xc0)
		}
		return appendAt(b, p.elem, v.UnsafePointer())
	case encArrayStruct:
		b = appendArrayHeader(b, len(p.fields))
		for _, f := range p.fields {
			b = appendValue(b, f.plan, v.Field(f.index))
		}
		return b
	}
	// encStruct: a map of the fields that are not omitted, in canonical order.
	n := len(p.fields)
	for _, f := range p.fields {
		if f.omitEmpty && isEmpty(f.plan, v.Field(f.index)) {
			n--
		}
	}
	b = appendMapHeader(b, n)
	for _, f := range p.fields {
		fv := v.Field(f.index)
		if f.omitEmpty && isEmpty(f.plan, fv) {
			continue
		}
		b = appendValue(append(b, f.key...), f.plan, fv)
	}
	return b
}

// appendElems appends an array of the n values of plan p at base.
func appendElems(b []byte, p *encPlan, base unsafe.Pointer, n int) []byte {
	b = appendArrayHeader(b, n)
	for i := range n {
		b = appendAt(b, p, unsafe.Add(base, uintptr(i)*p.size))
	}
	return b
}

// appendAt is appendValue for a value in memory (behind a pointer, in a
// slice): it reads it through unsafe pointers at the plan's offsets, which
// costs a plugin a fraction of reflect.Value's calls per field.
func appendAt(b []byte, p *encPlan, ptr unsafe.Pointer) []byte {
	switch p.kind {
	case encBool:
		if *(*bool)(ptr) {
			return append(b, 0xc3)
		}
		return append(b, 0xc2)
	case encInt:
		return appendInt(b, loadInt(p, ptr))
	case encUint:
		return appendUint(b, loadUint(p, ptr))
	case encString:
		s := *(*string)(ptr)
		return append(appendStrHeader(b, len(s)), s...)
	case encBytes:
		s := *(*[]byte)(ptr)
		if s == nil {
			return append(b, 0xc0)
		}
		return appendBin(b, s)
	case encSlice:
		s := *(*[]byte)(ptr) // the slice's header, whatever its element type
		if s == nil {
			return append(b, 0xc0)
		}
		return appendElems(b, p.elem, unsafe.Pointer(unsafe.SliceData(s)), len(s))
	case encPtr:
		q := *(*unsafe.Pointer)(ptr)
		if q == nil {
			return append(b, 0xc0)
		}
		return appendAt(b, p.elem, q)
	case encArrayStruct:
		b = appendArrayHeader(b, len(p.fields))
		for _, f := range p.fields {
			b = appendAt(b, f.plan, unsafe.Add(ptr, f.offset))
		}
		return b
	}
	n := len(p.fields)
	for _, f := range p.fields {
		if f.omitEmpty && isEmptyAt(f.plan, unsafe.Add(ptr, f.offset)) {
			n--
		}
	}
	b = appendMapHeader(b, n)
	for _, f := range p.fields {
		fp := unsafe.Add(ptr, f.offset)
		if f.omitEmpty && isEmptyAt(f.plan, fp) {
			continue
		}
		b = appendAt(append(b, f.key...), f.plan, fp)
	}
	return b
}

func loadInt(p *encPlan, ptr unsafe.Pointer) int64 {
	switch p.size {
	case 1:
		return int64(*(*int8)(ptr))
	case 2:
		return int64(*(*int16)(ptr))
	case 4:
		return int64(*(*int32)(ptr))
	}
	return *(*int64)(ptr)
}

func loadUint(p *encPlan, ptr unsafe.Pointer) uint64 {
	switch p.size {
	case 1:
		return uint64(*(*uint8)(ptr))
	case 2:
		return uint64(*(*uint16)(ptr))
	case 4:
		return uint64(*(*uint32)(ptr))
	}
	return *(*uint64)(ptr)
}

// isEmptyAt is isEmpty for a value in memory.
func isEmptyAt(p *encPlan, ptr unsafe.Pointer) bool {
	switch p.kind {
	case encBool:
		return !*(*bool)(ptr)
	case encInt:
		return loadInt(p, ptr) == 0
	case encUint:
		return loadUint(p, ptr) == 0
	case encString:
		return len(*(*string)(ptr)) == 0
	case encBytes, encSlice:
		return len(*(*[]byte)(ptr)) == 0
	case encPtr:
		return *(*unsafe.Pointer)(ptr) == nil
	}
	return false
}

func appendBin(b, s []byte) []byte {
	switch n := len(s); {
	case n < 256:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, s...)
}

func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// isEmpty is msgpack/v5's omitempty test for the kinds a plan has (not
// structs).
func isEmpty(p *encPlan, v reflect.Value) bool {
	switch p.kind {
	case encBool:
		return !v.Bool()
	case encInt:
		return v.Int() == 0
	case encUint:
		return v.Uint() == 0
	case encString, encBytes, encSlice:
		return v.Len() == 0
	case encPtr:
		return v.IsNil()
	}
	return false
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, 0xa0|byte(n))
	case n < 256:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

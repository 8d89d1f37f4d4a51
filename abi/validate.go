package abi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MaxDepth is the deepest nesting of MsgPack arrays and maps Validate accepts.
const MaxDepth = 64

// ErrMalformed is wrapped by every Validate and Unmarshal error about the
// shape of the input.
var ErrMalformed = errors.New("abi: malformed MsgPack")

// Validate checks that data is exactly one well-formed MsgPack value whose
// every declared length fits in the bytes that follow it, nested at most
// MaxDepth deep. It allocates nothing.
//
// It exists because msgpack/v5 (v5.4.1) preallocates slices from the declared
// element count without its documented limit, so a 5-byte input claiming 2^32
// elements exhausts memory. Every decoder of outside bytes in raftkv calls
// Unmarshal, which validates first.
func Validate(data []byte) error {
	var stack [MaxDepth]uint64 // items still to read at each open level
	depth := 0
	items := uint64(1) // the top-level value
	p := 0
	for {
		for items == 0 {
			if depth == 0 {
				if p != len(data) {
					return fmt.Errorf("%w: %d trailing bytes after the value", ErrMalformed, len(data)-p)
				}
				return nil
			}
			depth--
			items = stack[depth]
		}
		items--
		if p >= len(data) {
			return fmt.Errorf("%w: unexpected end of input", ErrMalformed)
		}
		c := data[p]
		p++
		var skip, children uint64
		switch k := codes[c]; k.kind {
		case codeFixed:
			skip = uint64(k.n)
		case codeFixArray:
			children = uint64(k.n)
		case codeFixMap:
			children = 2 * uint64(k.n)
		case codeInvalid:
			return fmt.Errorf("%w: invalid code 0x%02x at offset %d", ErrMalformed, c, p-1)
		default: // a length of k.n bytes follows
			if uint64(k.n) > uint64(len(data)-p) {
				return fmt.Errorf("%w: length %d at offset %d exceeds the %d bytes left", ErrMalformed, k.n, p, len(data)-p)
			}
			var n uint64
			switch k.n {
			case 1:
				n = uint64(data[p])
			case 2:
				n = uint64(binary.BigEndian.Uint16(data[p:]))
			default:
				n = uint64(binary.BigEndian.Uint32(data[p:]))
			}
			p += int(k.n)
			switch k.kind {
			case codeArray:
				children = n
			case codeMap:
				children = 2 * n
			case codeExt:
				skip = n + 1 // type byte
			default:
				skip = n
			}
		}
		if skip+children > uint64(len(data)-p) { // every child takes at least one byte
			return fmt.Errorf("%w: length %d at offset %d exceeds the %d bytes left", ErrMalformed, skip+children, p, len(data)-p)
		}
		p += int(skip)
		if children > 0 {
			if depth == MaxDepth {
				return fmt.Errorf("%w: nested deeper than %d levels", ErrMalformed, MaxDepth)
			}
			stack[depth] = items
			depth++
			items = children
		}
	}
}

// What a MsgPack code byte is, for Validate and skipValue: a table lookup
// costs a plugin a fraction of the fuel of a chain of comparisons.
type codeKind uint8

const (
	codeInvalid  codeKind = iota
	codeFixed             // n bytes follow (0 for nil, bools and fixints)
	codeFixArray          // an array of n items
	codeFixMap            // a map of n pairs
	codeBytes             // str or bin: an n-byte length, then that many bytes
	codeArray             // an n-byte length, then that many items
	codeMap               // an n-byte length, then that many pairs
	codeExt               // an n-byte length, a type byte, then that many bytes
)

type codeInfo struct {
	kind codeKind
	n    uint8
}

var codes = func() (t [256]codeInfo) {
	for c := range 256 {
		b := byte(c)
		k := codeInfo{kind: codeFixed}
		switch {
		case msgpcode.IsFixedNum(b), b == msgpcode.Nil, b == msgpcode.False, b == msgpcode.True:
		case msgpcode.IsFixedMap(b):
			k = codeInfo{codeFixMap, b & 0x0f}
		case msgpcode.IsFixedArray(b):
			k = codeInfo{codeFixArray, b & 0x0f}
		case msgpcode.IsFixedString(b):
			k.n = b & 0x1f
		case b == msgpcode.Uint8, b == msgpcode.Int8:
			k.n = 1
		case b == msgpcode.Uint16, b == msgpcode.Int16:
			k.n = 2
		case b == msgpcode.Uint32, b == msgpcode.Int32, b == msgpcode.Float:
			k.n = 4
		case b == msgpcode.Uint64, b == msgpcode.Int64, b == msgpcode.Double:
			k.n = 8
		case b == msgpcode.FixExt1:
			k.n = 2
		case b == msgpcode.FixExt2:
			k.n = 3
		case b == msgpcode.FixExt4:
			k.n = 5
		case b == msgpcode.FixExt8:
			k.n = 9
		case b == msgpcode.FixExt16:
			k.n = 17
		case b == msgpcode.Bin8, b == msgpcode.Str8:
			k = codeInfo{codeBytes, 1}
		case b == msgpcode.Bin16, b == msgpcode.Str16:
			k = codeInfo{codeBytes, 2}
		case b == msgpcode.Bin32, b == msgpcode.Str32:
			k = codeInfo{codeBytes, 4}
		case b == msgpcode.Array16:
			k = codeInfo{codeArray, 2}
		case b == msgpcode.Array32:
			k = codeInfo{codeArray, 4}
		case b == msgpcode.Map16:
			k = codeInfo{codeMap, 2}
		case b == msgpcode.Map32:
			k = codeInfo{codeMap, 4}
		case b == msgpcode.Ext8:
			k = codeInfo{codeExt, 1}
		case b == msgpcode.Ext16:
			k = codeInfo{codeExt, 2}
		case b == msgpcode.Ext32:
			k = codeInfo{codeExt, 4}
		default:
			k = codeInfo{}
		}
		t[c] = k
	}
	return t
}()

// Unmarshal validates data (see Validate) and decodes it into v, a non-nil
// pointer. An integer that does not fit in the Go integer type it decodes
// into is an error wrapping ErrIntRange, never truncated (see ints.go).
func Unmarshal(data []byte, v any) error {
	if err := Validate(data); err != nil {
		return err
	}
	if handled, wrote := fastUnmarshal(data, v); handled {
		return nil
	} else if wrote {
		reflect.ValueOf(v).Elem().SetZero()
	}
	return unmarshalSlow(data, v)
}

// unmarshalSlow decodes validated data into v with msgpack/v5.
func unmarshalSlow(data []byte, v any) error {
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.UsePreallocateValues(true)
	dec.Reset(bytes.NewReader(data))
	// Decode reads into a *uint64 (and the other pointers to integers) on a
	// fast path that skips the registered, range-checked integer decoders;
	// DecodeValue does not.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() && isInt(rv.Elem().Kind()) {
		return dec.DecodeValue(rv.Elem())
	}
	return dec.Decode(v)
}

// skipValue returns the offset of the end of the value that starts at p.
// It repeats Validate's reading of a header rather than share a function
// with it: in a plugin, that call per value doubled Validate's fuel (a
// 62-byte record: 1,622 → 3,623, TestFuelBreakdown).
func skipValue(data []byte, p int) (int, error) {
	for items := uint64(1); items > 0; items-- {
		if p >= len(data) {
			return 0, ErrMalformed
		}
		c := data[p]
		p++
		var skip, children uint64
		switch k := codes[c]; k.kind {
		case codeFixed:
			skip = uint64(k.n)
		case codeFixArray:
			children = uint64(k.n)
		case codeFixMap:
			children = 2 * uint64(k.n)
		case codeInvalid:
			return 0, ErrMalformed
		default:
			if int(k.n) > len(data)-p {
				return 0, ErrMalformed
			}
			var n uint64
			switch k.n {
			case 1:
				n = uint64(data[p])
			case 2:
				n = uint64(binary.BigEndian.Uint16(data[p:]))
			default:
				n = uint64(binary.BigEndian.Uint32(data[p:]))
			}
			p += int(k.n)
			switch k.kind {
			case codeArray:
				children = n
			case codeMap:
				children = 2 * n
			case codeExt:
				skip = n + 1
			default:
				skip = n
			}
		}
		if skip+children > uint64(len(data)-p) {
			return 0, ErrMalformed
		}
		p += int(skip)
		items += children
	}
	return p, nil
}

func isInt(k reflect.Kind) bool {
	return reflect.Int <= k && k <= reflect.Uintptr
}

// Marshal encodes v with the ABI's MsgPack conventions.
func Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

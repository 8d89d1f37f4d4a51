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
	var stack [MaxDepth]int // items still to read at each open level
	depth := 0
	items := 1 // the top-level value
	p := 0
	need := func(n uint64) error {
		if n > uint64(len(data)-p) {
			return fmt.Errorf("%w: length %d at offset %d exceeds the %d bytes left", ErrMalformed, n, p, len(data)-p)
		}
		return nil
	}
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
		var lenBytes int
		switch {
		case msgpcode.IsFixedNum(c), c == msgpcode.Nil, c == msgpcode.False, c == msgpcode.True:
		case msgpcode.IsFixedMap(c):
			children = 2 * uint64(c&0x0f)
		case msgpcode.IsFixedArray(c):
			children = uint64(c & 0x0f)
		case msgpcode.IsFixedString(c):
			skip = uint64(c & 0x1f)
		case c == msgpcode.Uint8, c == msgpcode.Int8:
			skip = 1
		case c == msgpcode.Uint16, c == msgpcode.Int16:
			skip = 2
		case c == msgpcode.Uint32, c == msgpcode.Int32, c == msgpcode.Float:
			skip = 4
		case c == msgpcode.Uint64, c == msgpcode.Int64, c == msgpcode.Double:
			skip = 8
		case c == msgpcode.Bin8, c == msgpcode.Str8:
			lenBytes = 1
		case c == msgpcode.Bin16, c == msgpcode.Str16, c == msgpcode.Array16, c == msgpcode.Map16:
			lenBytes = 2
		case c == msgpcode.Bin32, c == msgpcode.Str32, c == msgpcode.Array32, c == msgpcode.Map32:
			lenBytes = 4
		case c == msgpcode.FixExt1:
			skip = 2
		case c == msgpcode.FixExt2:
			skip = 3
		case c == msgpcode.FixExt4:
			skip = 5
		case c == msgpcode.FixExt8:
			skip = 9
		case c == msgpcode.FixExt16:
			skip = 17
		case c == msgpcode.Ext8:
			lenBytes = 1
		case c == msgpcode.Ext16:
			lenBytes = 2
		case c == msgpcode.Ext32:
			lenBytes = 4
		default:
			return fmt.Errorf("%w: invalid code 0x%02x at offset %d", ErrMalformed, c, p-1)
		}
		if lenBytes > 0 {
			if err := need(uint64(lenBytes)); err != nil {
				return err
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(data[p])
			case 2:
				n = uint64(binary.BigEndian.Uint16(data[p:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(data[p:]))
			}
			p += lenBytes
			switch c {
			case msgpcode.Array16, msgpcode.Array32:
				children = n
			case msgpcode.Map16, msgpcode.Map32:
				children = 2 * n
			case msgpcode.Ext8, msgpcode.Ext16, msgpcode.Ext32:
				skip = n + 1 // type byte
			default:
				skip = n
			}
		}
		if err := need(skip + children); err != nil { // every child takes at least one byte
			return err
		}
		p += int(skip)
		if children > 0 {
			if depth == MaxDepth {
				return fmt.Errorf("%w: nested deeper than %d levels", ErrMalformed, MaxDepth)
			}
			stack[depth] = items
			depth++
			items = int(children)
		}
	}
}

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
func skipValue(data []byte, p int) (int, error) {
	for items := 1; items > 0; items-- {
		if p >= len(data) {
			return 0, ErrMalformed
		}
		c := data[p]
		p++
		var skip, children uint64
		var lenBytes int
		switch {
		case c <= msgpcode.PosFixedNumHigh, c >= msgpcode.NegFixedNumLow, c == msgpcode.Nil, c == msgpcode.False, c == msgpcode.True:
		case msgpcode.IsFixedMap(c):
			children = 2 * uint64(c&0x0f)
		case msgpcode.IsFixedArray(c):
			children = uint64(c & 0x0f)
		case msgpcode.IsFixedString(c):
			skip = uint64(c & 0x1f)
		case c == msgpcode.Uint8, c == msgpcode.Int8:
			skip = 1
		case c == msgpcode.Uint16, c == msgpcode.Int16:
			skip = 2
		case c == msgpcode.Uint32, c == msgpcode.Int32, c == msgpcode.Float:
			skip = 4
		case c == msgpcode.Uint64, c == msgpcode.Int64, c == msgpcode.Double:
			skip = 8
		case c == msgpcode.Bin8, c == msgpcode.Str8, c == msgpcode.Ext8:
			lenBytes = 1
		case c == msgpcode.Bin16, c == msgpcode.Str16, c == msgpcode.Array16, c == msgpcode.Map16, c == msgpcode.Ext16:
			lenBytes = 2
		case c == msgpcode.Bin32, c == msgpcode.Str32, c == msgpcode.Array32, c == msgpcode.Map32, c == msgpcode.Ext32:
			lenBytes = 4
		case c == msgpcode.FixExt1:
			skip = 2
		case c == msgpcode.FixExt2:
			skip = 3
		case c == msgpcode.FixExt4:
			skip = 5
		case c == msgpcode.FixExt8:
			skip = 9
		case c == msgpcode.FixExt16:
			skip = 17
		default:
			return 0, ErrMalformed
		}
		if lenBytes > 0 {
			if lenBytes > len(data)-p {
				return 0, ErrMalformed
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(data[p])
			case 2:
				n = uint64(binary.BigEndian.Uint16(data[p:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(data[p:]))
			}
			p += lenBytes
			switch c {
			case msgpcode.Array16, msgpcode.Array32:
				children = n
			case msgpcode.Map16, msgpcode.Map32:
				children = 2 * n
			case msgpcode.Ext8, msgpcode.Ext16, msgpcode.Ext32:
				skip = n + 1
			default:
				skip = n
			}
		}
		if skip+children > uint64(len(data)-p) {
			return 0, ErrMalformed
		}
		p += int(skip)
		items += int(children)
	}
	return p, nil
}

func isInt(k reflect.Kind) bool {
	return reflect.Int <= k && k <= reflect.Uintptr
}

// Marshal encodes v with the ABI's MsgPack conventions.
func Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

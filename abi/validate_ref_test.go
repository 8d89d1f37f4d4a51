package abi_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/raftkv/raftkv/abi"
)

// validateRef is Validate as it was before its table (a chain of
// comparisons), the reference FuzzValidateRef holds Validate to.
func validateRef(data []byte) error {
	var stack [abi.MaxDepth]int // items still to read at each open level
	depth := 0
	items := 1 // the top-level value
	p := 0
	need := func(n uint64) error {
		if n > uint64(len(data)-p) {
			return fmt.Errorf("%w: length %d at offset %d exceeds the %d bytes left", abi.ErrMalformed, n, p, len(data)-p)
		}
		return nil
	}
	for {
		for items == 0 {
			if depth == 0 {
				if p != len(data) {
					return fmt.Errorf("%w: %d trailing bytes after the value", abi.ErrMalformed, len(data)-p)
				}
				return nil
			}
			depth--
			items = stack[depth]
		}
		items--
		if p >= len(data) {
			return fmt.Errorf("%w: unexpected end of input", abi.ErrMalformed)
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
			return fmt.Errorf("%w: invalid code 0x%02x at offset %d", abi.ErrMalformed, c, p-1)
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
			if depth == abi.MaxDepth {
				return fmt.Errorf("%w: nested deeper than %d levels", abi.ErrMalformed, abi.MaxDepth)
			}
			stack[depth] = items
			depth++
			items = int(children)
		}
	}
}

// FuzzValidateRef: Validate refuses exactly what its former version refused,
// with the same error.
func FuzzValidateRef(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add(s)
	}
	for _, s := range [][]byte{{0xdd, 0xff, 0xff, 0xff, 0xff}, {0xc7, 1}, {0xd4, 1, 2}, {0xc1}, {0x01, 0x02}, {},
		bytes.Repeat([]byte{0x91}, abi.MaxDepth+1), append(bytes.Repeat([]byte{0x91}, abi.MaxDepth-1), 0x01)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := fmt.Sprint(abi.Validate(data)), fmt.Sprint(validateRef(data))
		if got != want {
			t.Fatalf("%x: Validate %s, before %s", data, got, want)
		}
	})
}

// TestValidateEveryCode: every code byte, with room after it and without,
// is judged as before.
func TestValidateEveryCode(t *testing.T) {
	for c := range 256 {
		for _, data := range [][]byte{{byte(c)}, append([]byte{byte(c)}, bytes.Repeat([]byte{1}, 40)...),
			append([]byte{byte(c), 0, 0, 0, 2}, 1, 1, 1, 1), append([]byte{byte(c), 2}, 1, 1, 1)} {
			if got, want := fmt.Sprint(abi.Validate(data)), fmt.Sprint(validateRef(data)); got != want {
				t.Fatalf("%x: Validate %s, before %s", data, got, want)
			}
		}
	}
}

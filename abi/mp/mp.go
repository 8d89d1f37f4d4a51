// Package mp reads and writes MsgPack without allocating.
//
// A Reader walks a byte slice in place: strings and binaries come back as
// sub-slices of the input (capacity-limited, so appending to one never
// overwrites what follows it), and Skip validates and steps over a value of any
// depth without recursion. The Append functions encode into a caller-owned
// buffer, always with the smallest encoding MsgPack allows (the canonical
// form the msgpack/v5 encoder produces with UseCompactInts(true)).
//
// The host (the log entry envelope, the forwarding RPC, the HTTP key-value
// fast path) and the plugin SDK (the ABI's batch and scan encodings) use it;
// it lives in the abi module so that neither imports the other. Plugin
// code may use it for its own commands and results.
package mp

import (
	"encoding/binary"
	"errors"
	"math"
)

// Errors returned by Reader methods. They are fixed values: returning one
// never allocates.
var (
	// ErrShort means the data ends inside a value.
	ErrShort = errors.New("mp: unexpected end of data")
	// ErrType means the next value is not of the type asked for.
	ErrType = errors.New("mp: unexpected type")
	// ErrInvalid means the data holds the byte 0xc1, which MsgPack never uses.
	ErrInvalid = errors.New("mp: invalid code 0xc1")
	// ErrRange means an integer does not fit the Go type asked for.
	ErrRange = errors.New("mp: integer out of range")
)

// Type is the kind of a MsgPack value.
type Type uint8

// Value types reported by Reader.Peek.
const (
	TypeInvalid Type = iota // end of data or the unused code 0xc1
	TypeNil
	TypeBool
	TypeInt // any integer encoding, signed or unsigned
	TypeFloat
	TypeStr
	TypeBin
	TypeArray
	TypeMap
	TypeExt
)

var typeNames = [...]string{"invalid", "nil", "bool", "int", "float", "str", "bin", "array", "map", "ext"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// typeOf classifies a leading byte.
func typeOf(c byte) Type {
	switch {
	case c <= 0x7f || c >= 0xe0:
		return TypeInt
	case c <= 0x8f:
		return TypeMap
	case c <= 0x9f:
		return TypeArray
	case c <= 0xbf:
		return TypeStr
	}
	switch c {
	case 0xc0:
		return TypeNil
	case 0xc2, 0xc3:
		return TypeBool
	case 0xc4, 0xc5, 0xc6:
		return TypeBin
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return TypeExt
	case 0xca, 0xcb:
		return TypeFloat
	case 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
		return TypeInt
	case 0xd9, 0xda, 0xdb:
		return TypeStr
	case 0xdc, 0xdd:
		return TypeArray
	case 0xde, 0xdf:
		return TypeMap
	}
	return TypeInvalid // 0xc1
}

// Reader decodes MsgPack values from a byte slice, in place. The zero Reader
// reads an empty input; Reset points it at data. A failed read leaves the
// position unspecified: stop using the Reader (or Reset it) after an error.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b from its start.
func (r *Reader) Reset(b []byte) { r.b, r.off = b, 0 }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Offset returns the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

// Peek returns the type of the next value without consuming it.
func (r *Reader) Peek() Type {
	if r.off >= len(r.b) {
		return TypeInvalid
	}
	return typeOf(r.b[r.off])
}

// need reports whether n more bytes are available after the current position.
func (r *Reader) need(n int) bool { return n >= 0 && n <= len(r.b)-r.off }

func (r *Reader) u8() uint8   { v := r.b[r.off]; r.off++; return v }
func (r *Reader) u16() uint16 { v := binary.BigEndian.Uint16(r.b[r.off:]); r.off += 2; return v }
func (r *Reader) u32() uint32 { v := binary.BigEndian.Uint32(r.b[r.off:]); r.off += 4; return v }
func (r *Reader) u64() uint64 { v := binary.BigEndian.Uint64(r.b[r.off:]); r.off += 8; return v }

// sized reads a 1-, 2- or 4-byte big-endian length.
func (r *Reader) sized(width int) (int, error) {
	if !r.need(width) {
		return 0, ErrShort
	}
	switch width {
	case 1:
		return int(r.u8()), nil
	case 2:
		return int(r.u16()), nil
	default:
		return int(r.u32()), nil
	}
}

// ReadArrayHeader reads an array header and returns the element count.
func (r *Reader) ReadArrayHeader() (int, error) {
	if !r.need(1) {
		return 0, ErrShort
	}
	c := r.b[r.off]
	switch {
	case c >= 0x90 && c <= 0x9f:
		r.off++
		return int(c & 0x0f), nil
	case c == 0xdc:
		r.off++
		return r.sized(2)
	case c == 0xdd:
		r.off++
		return r.sized(4)
	}
	return 0, typeErr(c)
}

// ReadMapHeader reads a map header and returns the number of key/value pairs.
func (r *Reader) ReadMapHeader() (int, error) {
	if !r.need(1) {
		return 0, ErrShort
	}
	c := r.b[r.off]
	switch {
	case c >= 0x80 && c <= 0x8f:
		r.off++
		return int(c & 0x0f), nil
	case c == 0xde:
		r.off++
		return r.sized(2)
	case c == 0xdf:
		r.off++
		return r.sized(4)
	}
	return 0, typeErr(c)
}

// ReadBytes reads a str or bin value and returns its bytes as a sub-slice of
// the input (no copy). The result's capacity equals its length.
func (r *Reader) ReadBytes() ([]byte, error) {
	if !r.need(1) {
		return nil, ErrShort
	}
	c := r.b[r.off]
	var n int
	var err error
	switch {
	case c >= 0xa0 && c <= 0xbf:
		r.off++
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		r.off++
		n, err = r.sized(1)
	case c == 0xda || c == 0xc5:
		r.off++
		n, err = r.sized(2)
	case c == 0xdb || c == 0xc6:
		r.off++
		n, err = r.sized(4)
	default:
		return nil, typeErr(c)
	}
	if err != nil {
		return nil, err
	}
	if !r.need(n) {
		return nil, ErrShort
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v, nil
}

// ReadInt64 reads an integer of any encoding that fits an int64.
func (r *Reader) ReadInt64() (int64, error) {
	neg, u, err := r.readInteger()
	if err != nil {
		return 0, err
	}
	if neg {
		return int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, ErrRange
	}
	return int64(u), nil
}

// ReadUint64 reads a non-negative integer of any encoding.
func (r *Reader) ReadUint64() (uint64, error) {
	neg, u, err := r.readInteger()
	if err != nil {
		return 0, err
	}
	if neg {
		return 0, ErrRange
	}
	return u, nil
}

// readInteger returns the integer's bits and whether it is negative (then u
// holds the two's complement int64).
func (r *Reader) readInteger() (neg bool, u uint64, err error) {
	if !r.need(1) {
		return false, 0, ErrShort
	}
	c := r.b[r.off]
	if c <= 0x7f {
		r.off++
		return false, uint64(c), nil
	}
	if c >= 0xe0 {
		r.off++
		return true, uint64(int64(int8(c))), nil
	}
	var width int
	switch c {
	case 0xcc, 0xd0:
		width = 1
	case 0xcd, 0xd1:
		width = 2
	case 0xce, 0xd2:
		width = 4
	case 0xcf, 0xd3:
		width = 8
	default:
		return false, 0, typeErr(c)
	}
	if !r.need(1 + width) {
		return false, 0, ErrShort
	}
	r.off++
	var s int64
	switch c {
	case 0xcc:
		return false, uint64(r.u8()), nil
	case 0xcd:
		return false, uint64(r.u16()), nil
	case 0xce:
		return false, uint64(r.u32()), nil
	case 0xcf:
		return false, r.u64(), nil
	case 0xd0:
		s = int64(int8(r.u8()))
	case 0xd1:
		s = int64(int16(r.u16()))
	case 0xd2:
		s = int64(int32(r.u32()))
	default: // 0xd3
		s = int64(r.u64())
	}
	return s < 0, uint64(s), nil
}

// ReadBool reads a boolean.
func (r *Reader) ReadBool() (bool, error) {
	if !r.need(1) {
		return false, ErrShort
	}
	switch c := r.b[r.off]; c {
	case 0xc2, 0xc3:
		r.off++
		return c == 0xc3, nil
	default:
		return false, typeErr(c)
	}
}

// ReadNil consumes a nil.
func (r *Reader) ReadNil() error {
	if !r.need(1) {
		return ErrShort
	}
	if c := r.b[r.off]; c != 0xc0 {
		return typeErr(c)
	}
	r.off++
	return nil
}

func typeErr(c byte) error {
	if c == 0xc1 {
		return ErrInvalid
	}
	return ErrType
}

// Skip steps over the next value, including everything nested in it, and
// fails if it is not well-formed. It does not recurse, so deeply nested input
// cannot exhaust the stack.
func (r *Reader) Skip() error {
	// pending counts the values still to step over; every value takes at least
	// one byte, so more pending values than remaining bytes is a short input.
	pending := 1
	for pending > 0 {
		if pending > len(r.b)-r.off {
			return ErrShort
		}
		pending--
		c := r.b[r.off]
		r.off++
		var skip, width int
		switch {
		case c <= 0x7f || c >= 0xe0:
			continue
		case c <= 0x8f:
			pending += 2 * int(c&0x0f)
			continue
		case c <= 0x9f:
			pending += int(c & 0x0f)
			continue
		case c <= 0xbf:
			skip = int(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3:
				continue
			case 0xc1:
				return ErrInvalid
			case 0xcc, 0xd0:
				skip = 1
			case 0xcd, 0xd1:
				skip = 2
			case 0xca, 0xce, 0xd2:
				skip = 4
			case 0xcb, 0xcf, 0xd3:
				skip = 8
			case 0xd4:
				skip = 1 + 1
			case 0xd5:
				skip = 1 + 2
			case 0xd6:
				skip = 1 + 4
			case 0xd7:
				skip = 1 + 8
			case 0xd8:
				skip = 1 + 16
			case 0xc4, 0xd9:
				width = 1
			case 0xc5, 0xda:
				width = 2
			case 0xc6, 0xdb:
				width = 4
			case 0xc7: // ext 8: length, type, data
				width = 1
				skip = 1
			case 0xc8:
				width = 2
				skip = 1
			case 0xc9:
				width = 4
				skip = 1
			case 0xdc, 0xdd, 0xde, 0xdf:
				w := 2
				if c == 0xdd || c == 0xdf {
					w = 4
				}
				n, err := r.sized(w)
				if err != nil {
					return err
				}
				if c >= 0xde {
					n *= 2
				}
				pending += n
				continue
			}
		}
		if width > 0 {
			n, err := r.sized(width)
			if err != nil {
				return err
			}
			skip += n
		}
		if !r.need(skip) {
			return ErrShort
		}
		r.off += skip
	}
	return nil
}

// ReadRaw steps over the next value like Skip and returns its encoding as a
// sub-slice of the input.
func (r *Reader) ReadRaw() ([]byte, error) {
	start := r.off
	if err := r.Skip(); err != nil {
		return nil, err
	}
	return r.b[start:r.off:r.off], nil
}

// Valid reports whether b is exactly one well-formed MsgPack value.
func Valid(b []byte) bool {
	r := Reader{b: b}
	return r.Skip() == nil && r.off == len(b)
}

// AppendNil appends a nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

// AppendBool appends a boolean.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// AppendUint appends an unsigned integer in its shortest encoding.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// AppendInt appends a signed integer in its shortest encoding (non-negative
// values use the unsigned encodings).
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// AppendFloat64 appends a float64.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

// AppendString appends s as a MsgPack str.
func AppendString(b []byte, s string) []byte {
	return append(appendStrHeader(b, len(s)), s...)
}

// AppendStringBytes appends s as a MsgPack str.
func AppendStringBytes(b []byte, s []byte) []byte {
	return append(appendStrHeader(b, len(s)), s...)
}

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xda, byte(n>>8), byte(n))
	}
	return append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendBytes appends v as a MsgPack bin (a nil v is an empty bin, not nil).
func AppendBytes(b []byte, v []byte) []byte {
	return append(AppendBinHeader(b, len(v)), v...)
}

// AppendBinHeader appends the header of a bin of n bytes; the caller appends
// the n bytes.
func AppendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xc5, byte(n>>8), byte(n))
	}
	return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendArrayHeader appends the header of an array of n elements.
func AppendArrayHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendMapHeader appends the header of a map of n key/value pairs.
func AppendMapHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	}
	return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// BinSize returns the encoded size of a bin of n bytes.
func BinSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// UintSize returns the encoded size of v.
func UintSize(v uint64) int {
	switch {
	case v <= 0x7f:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

// ArrayHeaderSize returns the encoded size of an array header for n elements
// (the same as a map header for n pairs).
func ArrayHeaderSize(n int) int {
	switch {
	case n <= 15:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

package abi

import (
	"fmt"
	"math"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Integers are range-checked when decoded. msgpack/v5 (v5.4.1) converts
// any integer into any Go integer type by truncation: -5 decodes into a
// uint64 as 2^64-5 and 300 into a uint8 as 44, so a plugin that took an
// amount as a uint64 would mint 2^64-5 from a client's -5. The decoders
// registered here, for every built-in integer type, fail instead with
// ErrIntRange; a MsgPack nil still decodes as 0, as msgpack/v5 does.
// Registration is process-wide: every msgpack/v5 decoding into these types,
// in any package of a program that links abi, is checked.

// ErrIntRange is wrapped by the Unmarshal error of an integer that does not
// fit in the Go type it decodes into.
var ErrIntRange = fmt.Errorf("abi: integer out of range")

func init() {
	for _, v := range []any{int(0), int8(0), int16(0), int32(0), int64(0)} {
		msgpack.Register(v, nil, decodeSigned)
	}
	for _, v := range []any{uint(0), uint8(0), uint16(0), uint32(0), uint64(0), uintptr(0)} {
		msgpack.Register(v, nil, decodeUnsigned)
	}
}

// readInt reads a MsgPack integer (or nil, as 0): neg reports whether it is
// negative, in which case n is its value as an int64, else u is its value.
func readInt(d *msgpack.Decoder) (n int64, u uint64, neg bool, err error) {
	c, err := d.PeekCode()
	if err != nil {
		return 0, 0, false, err
	}
	switch {
	case c == msgpcode.Nil:
		return 0, 0, false, d.DecodeNil()
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
		n, err = d.DecodeInt64()
		if n < 0 {
			return n, 0, true, err
		}
		return n, uint64(n), false, err
	default: // uint8..uint64; anything else is DecodeUint64's type error
		u, err = d.DecodeUint64()
		return 0, u, false, err
	}
}

func decodeSigned(d *msgpack.Decoder, v reflect.Value) error {
	n, u, neg, err := readInt(d)
	if err != nil {
		return err
	}
	if !neg {
		if u > math.MaxInt64 || v.OverflowInt(int64(u)) {
			return fmt.Errorf("%w: %d does not fit in %s", ErrIntRange, u, v.Type())
		}
		n = int64(u)
	} else if v.OverflowInt(n) {
		return fmt.Errorf("%w: %d does not fit in %s", ErrIntRange, n, v.Type())
	}
	v.SetInt(n)
	return nil
}

func decodeUnsigned(d *msgpack.Decoder, v reflect.Value) error {
	n, u, neg, err := readInt(d)
	if err != nil {
		return err
	}
	if neg || v.OverflowUint(u) {
		if neg {
			return fmt.Errorf("%w: %d does not fit in %s", ErrIntRange, n, v.Type())
		}
		return fmt.Errorf("%w: %d does not fit in %s", ErrIntRange, u, v.Type())
	}
	v.SetUint(u)
	return nil
}

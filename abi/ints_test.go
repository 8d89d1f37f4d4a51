package abi_test

import (
	"errors"
	"math"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

// TestUnmarshalIntRange: an integer that does not fit in its Go type is an
// error, never truncated (msgpack/v5 alone decodes -5 into a uint64 as
// 2^64-5), in a struct field, behind a pointer, in a slice and at the top
// level; integers that fit decode whatever their MsgPack encoding.
func TestUnmarshalIntRange(t *testing.T) {
	type req struct {
		U   uint64   `msgpack:"u"`
		I8  int8     `msgpack:"i8"`
		U8  uint8    `msgpack:"u8"`
		I   int64    `msgpack:"i"`
		P   *uint32  `msgpack:"p"`
		S   []uint16 `msgpack:"s"`
		Any any      `msgpack:"any"`
	}
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type m = map[string]any
	for _, bad := range []any{
		m{"u": -5}, m{"u": int64(math.MinInt64)}, m{"i8": 128}, m{"i8": -129}, m{"u8": 256}, m{"u8": -1},
		m{"i": uint64(math.MaxUint64)}, m{"p": -1}, m{"p": uint64(1) << 32}, m{"s": []any{1, -1}},
	} {
		var r req
		if err := abi.Unmarshal(enc(bad), &r); !errors.Is(err, abi.ErrIntRange) {
			t.Errorf("%v: %v, %+v; want ErrIntRange", bad, err, r)
		}
	}
	var top uint64
	if err := abi.Unmarshal(enc(-1), &top); !errors.Is(err, abi.ErrIntRange) {
		t.Errorf("-1 into a top-level uint64: %v (%d)", err, top)
	}
	var r req
	if err := abi.Unmarshal(enc(m{"u": uint8(7), "i8": -128, "u8": int64(255), "i": -1, "p": int8(3), "s": []any{0, 65535}, "any": -5, "none": nil}), &r); err != nil {
		t.Fatal(err)
	}
	if r.U != 7 || r.I8 != -128 || r.U8 != 255 || r.I != -1 || r.P == nil || *r.P != 3 || len(r.S) != 2 || r.S[1] != 65535 || r.Any != int8(-5) {
		t.Fatalf("%+v", r)
	}
	if err := abi.Unmarshal(enc(m{"u": nil}), &r); err != nil || r.U != 0 {
		t.Fatalf("nil into a uint64: %v %d", err, r.U)
	}
	if err := abi.Unmarshal(enc(m{"u": 1.5}), &r); err == nil {
		t.Fatal("a float decoded into a uint64")
	}
	if err := abi.Unmarshal(enc(uint64(math.MaxUint64)), &top); err != nil || top != math.MaxUint64 {
		t.Fatalf("max uint64: %v %d", err, top)
	}
}

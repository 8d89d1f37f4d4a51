package mp_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi/mp"
)

// compact encodes v as msgpack/v5 does with compact integers: the canonical
// form the Append functions must produce.
func compact(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendMatchesMsgpack(t *testing.T) {
	uints := []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64}
	for _, u := range uints {
		if got, want := mp.AppendUint(nil, u), compact(t, u); !bytes.Equal(got, want) {
			t.Errorf("AppendUint(%d) = % x, want % x", u, got, want)
		}
		if got := mp.UintSize(u); got != len(mp.AppendUint(nil, u)) {
			t.Errorf("UintSize(%d) = %d", u, got)
		}
	}
	ints := []int64{0, 1, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64, math.MaxInt64, 127, 128}
	for _, i := range ints {
		if got, want := mp.AppendInt(nil, i), compact(t, i); !bytes.Equal(got, want) {
			t.Errorf("AppendInt(%d) = % x, want % x", i, got, want)
		}
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000} {
		b := bytes.Repeat([]byte{'x'}, n)
		if got, want := mp.AppendBytes(nil, b), compact(t, b); !bytes.Equal(got, want) {
			t.Errorf("AppendBytes(%d bytes) differs: % x vs % x", n, got[:min(8, len(got))], want[:min(8, len(want))])
		}
		if got := mp.BinSize(n); got != len(mp.AppendBytes(nil, b)) {
			t.Errorf("BinSize(%d) = %d", n, got)
		}
		if got, want := mp.AppendString(nil, string(b)), compact(t, string(b)); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%d bytes) differs", n)
		}
		if got, want := mp.AppendStringBytes(nil, b), compact(t, string(b)); !bytes.Equal(got, want) {
			t.Errorf("AppendStringBytes(%d bytes) differs", n)
		}
		arr := make([]any, n)
		for i := range arr {
			arr[i] = nil
		}
		want := compact(t, arr)
		got := mp.AppendArrayHeader(nil, n)
		for range n {
			got = mp.AppendNil(got)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("AppendArrayHeader(%d) differs", n)
		}
		if mp.ArrayHeaderSize(n) != len(mp.AppendArrayHeader(nil, n)) {
			t.Errorf("ArrayHeaderSize(%d) wrong", n)
		}
		var mh []byte
		switch {
		case n <= 15:
			mh = []byte{0x80 | byte(n)}
		case n <= 65535:
			mh = []byte{0xde, byte(n >> 8), byte(n)}
		default:
			mh = []byte{0xdf, 0, byte(n >> 16), byte(n >> 8), byte(n)}
		}
		if got := mp.AppendMapHeader(nil, n); !bytes.Equal(got, mh) {
			t.Errorf("AppendMapHeader(%d) = % x, want % x", n, got, mh)
		}
	}
	if got := mp.AppendBytes(nil, nil); !bytes.Equal(got, []byte{0xc4, 0}) {
		t.Errorf("AppendBytes(nil) = % x, want an empty bin", got)
	}
	if got, want := mp.AppendBool(mp.AppendBool(nil, true), false), []byte{0xc3, 0xc2}; !bytes.Equal(got, want) {
		t.Errorf("AppendBool = % x", got)
	}
	if got, want := mp.AppendFloat64(nil, 1.5), compact(t, 1.5); !bytes.Equal(got, want) {
		t.Errorf("AppendFloat64 = % x, want % x", got, want)
	}
}

func TestReader(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf) // fixed-width integers: every encoding must read back
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(enc.EncodeArrayLen(9))
	must(enc.EncodeUint64(7))
	must(enc.EncodeInt64(-7))
	must(enc.EncodeInt8(-100))
	must(enc.EncodeUint16(300))
	must(enc.EncodeString("hello"))
	must(enc.EncodeBytes([]byte{1, 2, 3}))
	must(enc.EncodeBool(true))
	must(enc.EncodeNil())
	must(enc.EncodeMapLen(1))
	must(enc.EncodeString("k"))
	must(enc.Encode(map[string]any{"nested": []any{1, "x", 2.5}}))
	data := buf.Bytes()

	r := mp.NewReader(data)
	if r.Peek() != mp.TypeArray {
		t.Fatalf("Peek = %v", r.Peek())
	}
	n, err := r.ReadArrayHeader()
	if err != nil || n != 9 {
		t.Fatalf("ReadArrayHeader = %d, %v", n, err)
	}
	if u, err := r.ReadUint64(); u != 7 || err != nil {
		t.Fatalf("ReadUint64 = %d, %v", u, err)
	}
	if r.Peek() != mp.TypeInt {
		t.Fatalf("Peek = %v", r.Peek())
	}
	if _, err := mp.NewReader(data[r.Offset():]).ReadUint64(); !errors.Is(err, mp.ErrRange) {
		t.Fatalf("ReadUint64 of -7: %v, want ErrRange", err)
	}
	if i, err := r.ReadInt64(); i != -7 || err != nil {
		t.Fatalf("ReadInt64 = %d, %v", i, err)
	}
	if i, err := r.ReadInt64(); i != -100 || err != nil {
		t.Fatalf("ReadInt64 = %d, %v", i, err)
	}
	if u, err := r.ReadUint64(); u != 300 || err != nil {
		t.Fatalf("ReadUint64 = %d, %v", u, err)
	}
	if r.Peek() != mp.TypeStr {
		t.Fatalf("Peek = %v", r.Peek())
	}
	if s, err := r.ReadBytes(); string(s) != "hello" || err != nil || cap(s) != len(s) {
		t.Fatalf("ReadBytes = %q (cap %d), %v", s, cap(s), err)
	}
	if r.Peek() != mp.TypeBin {
		t.Fatalf("Peek = %v", r.Peek())
	}
	if b, err := r.ReadBytes(); !bytes.Equal(b, []byte{1, 2, 3}) || err != nil {
		t.Fatalf("ReadBytes = %v, %v", b, err)
	}
	if _, err := r.ReadBytes(); !errors.Is(err, mp.ErrType) {
		t.Fatalf("ReadBytes of a bool: %v, want ErrType", err)
	}
	if v, err := r.ReadBool(); !v || err != nil {
		t.Fatalf("ReadBool = %v, %v", v, err)
	}
	if err := r.ReadNil(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.ReadMapHeader(); n != 1 || err != nil {
		t.Fatalf("ReadMapHeader = %d, %v", n, err)
	}
	if err := r.Skip(); err != nil {
		t.Fatal(err)
	}
	raw, err := r.ReadRaw()
	if err != nil || !mp.Valid(raw) || r.Len() != 0 {
		t.Fatalf("ReadRaw = % x, %v; %d bytes left", raw, err, r.Len())
	}
	if _, err := r.ReadUint64(); !errors.Is(err, mp.ErrShort) {
		t.Fatalf("read past the end: %v, want ErrShort", err)
	}
	if r.Peek() != mp.TypeInvalid {
		t.Fatalf("Peek at the end = %v", r.Peek())
	}
	if mp.TypeMap.String() != "map" || mp.Type(99).String() != "unknown" {
		t.Errorf("Type.String: %q %q", mp.TypeMap, mp.Type(99))
	}
}

// libValid reports whether msgpack/v5 reads b as exactly one value.
func libValid(b []byte) bool {
	rd := bytes.NewReader(b)
	return len(b) > 0 && msgpack.NewDecoder(rd).Skip() == nil && rd.Len() == 0
}

// randomValue appends a random MsgPack value of any type to b.
func randomValue(r *rand.Rand, b []byte, depth int) []byte {
	switch k := r.IntN(12); {
	case k == 0 && depth < 4:
		n := r.IntN(5)
		b = mp.AppendArrayHeader(b, n)
		for range n {
			b = randomValue(r, b, depth+1)
		}
		return b
	case k == 1 && depth < 4:
		n := r.IntN(4)
		b = mp.AppendMapHeader(b, n)
		for range 2 * n {
			b = randomValue(r, b, depth+1)
		}
		return b
	case k == 2:
		return mp.AppendInt(b, int64(r.Uint64()))
	case k == 3:
		return mp.AppendUint(b, r.Uint64()>>r.IntN(64))
	case k == 4:
		return mp.AppendBytes(b, make([]byte, r.IntN(300)))
	case k == 5:
		return mp.AppendString(b, string(make([]byte, r.IntN(70))))
	case k == 6:
		return mp.AppendFloat64(b, r.Float64())
	case k == 7:
		return append(b, 0xca, 1, 2, 3, 4) // float32
	case k == 8:
		exts := [][]byte{{0xd4, 1, 0}, {0xd5, 1, 0, 0}, {0xd6, 0xff, 1, 2, 3, 4}, {0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {0xc7, 2, 5, 9, 9}, {0xc8, 0, 1, 5, 9}}
		return append(b, exts[r.IntN(len(exts))]...)
	case k == 9:
		return mp.AppendBool(b, r.IntN(2) == 0)
	case k == 10:
		return append(b, 0xdc, 0, 1, 0xc0) // array16 of one nil
	}
	return mp.AppendNil(b)
}

// TestSkipAgreesWithMsgpack checks Valid, Skip and ReadRaw against
// msgpack/v5 on random values and on mutations of them.
func TestSkipAgreesWithMsgpack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := randomValue(r, nil, 0)
		if !mp.Valid(b) || !libValid(b) {
			t.Fatalf("valid value % x: mp %v, msgpack %v", b, mp.Valid(b), libValid(b))
		}
		rd := mp.NewReader(append(b, 0xc0))
		raw, err := rd.ReadRaw()
		if err != nil || !bytes.Equal(raw, b) || rd.Len() != 1 {
			t.Fatalf("ReadRaw of % x = % x, %v", b, raw, err)
		}
		m := bytes.Clone(b)
		switch r.IntN(3) {
		case 0:
			m = m[:r.IntN(len(m))]
		case 1:
			m[r.IntN(len(m))] = byte(r.IntN(256))
		default:
			m = append(m, byte(r.IntN(256)))
		}
		if mp.Valid(m) != libValid(m) {
			t.Fatalf("mutated % x: mp.Valid %v, msgpack %v", m, mp.Valid(m), libValid(m))
		}
	}
}

func TestSkipDeepNesting(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x91}, 1<<20), 0xc0)
	if !mp.Valid(deep) {
		t.Fatal("a million nested arrays are valid MsgPack")
	}
	if mp.Valid(deep[:len(deep)-1]) {
		t.Fatal("truncated nesting is not valid")
	}
	huge := []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0} // array32 of 4G elements, one present
	if err := mp.NewReader(huge).Skip(); !errors.Is(err, mp.ErrShort) {
		t.Fatalf("Skip of a short array32: %v", err)
	}
	if err := mp.NewReader([]byte{0xc1}).Skip(); !errors.Is(err, mp.ErrInvalid) {
		t.Fatalf("Skip of 0xc1: %v", err)
	}
}

func FuzzValid(f *testing.F) {
	f.Add([]byte{0x81, 0xa2, 'o', 'p', 0xa3, 'S', 'E', 'T'})
	f.Add([]byte{0xdd, 0, 0, 0, 2, 0xc0})
	f.Add([]byte{0xc7, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if mp.Valid(b) != libValid(b) {
			t.Fatalf("% x: mp.Valid %v, msgpack %v", b, mp.Valid(b), libValid(b))
		}
	})
}

package abi_test

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

type (
	fastCode  uint8
	fastName  string
	fastBytes []byte
	fastInner struct {
		A uint32   `msgpack:"a"`
		B string   `msgpack:"b,omitempty"`
		C []string `msgpack:"c"`
		D *int16   `msgpack:"d"`
	}
	fastAll struct {
		U      uint64      `msgpack:"u"`
		I      int64       `msgpack:"i"`
		I8     int8        `msgpack:"i8"`
		U8     uint8       `msgpack:"u8"`
		U16    uint16      `msgpack:"u16"`
		I32    int32       `msgpack:"i32"`
		N      int         `msgpack:"n"`
		Code   fastCode    `msgpack:"code"`
		S      string      `msgpack:"s"`
		Name   fastName    `msgpack:"name"`
		B      []byte      `msgpack:"b"`
		FB     fastBytes   `msgpack:"fb"`
		T      bool        `msgpack:"t"`
		P      *uint32     `msgpack:"p"`
		PS     *fastInner  `msgpack:"ps"`
		L      []uint16    `msgpack:"l"`
		SS     []string    `msgpack:"ss"`
		In     fastInner   `msgpack:"in"`
		LI     []fastInner `msgpack:"li"`
		Skip   string      `msgpack:"-"`
		Omit   string      `msgpack:"o,omitempty"`
		NoTag  uint16
		hidden int
	}
	// fastList refers to itself.
	fastList struct {
		V    int       `msgpack:"v"`
		Next *fastList `msgpack:"next"`
	}
	// fastFloat has a field the fast path leaves to msgpack/v5.
	fastFloat struct {
		A uint64  `msgpack:"a"`
		F float64 `msgpack:"f"`
	}
)

// fastTargets are the types FuzzUnmarshalFast decodes into.
var fastTargets = []func() any{
	func() any { return new(fastAll) },
	func() any { return new(fastInner) },
	func() any { return new(fastList) },
	func() any { return new(fastFloat) },
	func() any { return new(abi.Batch) },
	func() any { return new([]abi.Record) },
	func() any { return new(abi.Migration) },
	func() any { return new(abi.Info) },
	func() any { return new(abi.Result) },
	func() any { return new(uint64) },
	func() any { return new(int8) },
	func() any { return new(fastCode) },
	func() any { return new(string) },
	func() any { return new([]byte) },
	func() any { return new([]string) },
	func() any { return new(bool) },
}

func fastSeeds(t testing.TB) [][]byte {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d := int16(-300)
	p := uint32(70000)
	type m = map[string]any
	seeds := [][]byte{
		enc(fastAll{U: math.MaxUint64, I: math.MinInt64, I8: -128, U8: 255, U16: 65535, I32: -1 << 31, N: 5, Code: 7,
			S: "héllo", Name: "n", B: []byte{}, FB: []byte{1, 2}, T: true, P: &p,
			PS: &fastInner{A: 1, C: []string{"x", ""}, D: &d}, L: []uint16{1, 2}, SS: []string{}, In: fastInner{B: "in"},
			LI: []fastInner{{A: 3}, {}}, Skip: "skip", Omit: "o", NoTag: 9}),
		enc(m{"u": -5}), enc(m{"code": 300}), enc(m{"u8": 256}), enc(m{"i": uint64(math.MaxUint64)}),
		enc(m{"s": []byte("bin"), "b": "str", "t": nil, "p": nil, "l": nil, "ss": nil, "in": nil}),
		enc(m{"li": []any{m{"a": 1}, []any{1, "b", nil, nil}}}), enc(m{"x": m{"deep": []any{1.5, true}}, "u": 1}),
		{0x82, 0xa1, 'u', 1, 0xa1, 'u', 2}, {0x82, 0xa1, 'l', 0x91, 1, 0xa1, 'l', 0x92, 2, 3}, enc(m{"f": 1.5, "a": 1}), enc(m{"v": 1, "next": m{"v": 2, "next": nil}}),
		enc([]any{1, 2}), enc(uint64(math.MaxUint64)), enc(-1), enc("s"), enc([]string{"a"}), enc(true), enc(nil),
	}
	for _, g := range goldens {
		seeds = append(seeds, enc(g.v))
	}
	return seeds
}

// checkFastMatchesSlow: Unmarshal (with its fast path) and msgpack/v5 alone
// agree on data, for every target type: the same error, or the same value.
func checkFastMatchesSlow(t *testing.T, data []byte) {
	for _, newT := range fastTargets {
		fast, slow := newT(), newT()
		errF, errS := abi.Unmarshal(data, fast), abi.UnmarshalSlow(data, slow)
		if (errF == nil) != (errS == nil) || (errS != nil && errF.Error() != errS.Error()) {
			t.Fatalf("%x into %T: Unmarshal %v, msgpack/v5 %v", data, fast, errF, errS)
		}
		if errS == nil && !reflect.DeepEqual(fast, slow) && !sameEncoding(t, fast, slow) { // NaN != NaN
			t.Fatalf("%x into %T:\nUnmarshal  %+v\nmsgpack/v5 %+v", data, fast, fast, slow)
		}
		if errors.Is(errF, abi.ErrIntRange) != errors.Is(errS, abi.ErrIntRange) {
			t.Fatalf("%x into %T: ErrIntRange differs", data, fast)
		}
	}
}

func sameEncoding(t *testing.T, a, b any) bool {
	x, err1 := msgpack.Marshal(a)
	y, err2 := msgpack.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(x, y)
}

func TestUnmarshalFastMatchesSlow(t *testing.T) {
	for _, s := range fastSeeds(t) {
		checkFastMatchesSlow(t, s)
	}
}

// TestUnmarshalFastPathTaken: the fast path decodes the ABI's messages and
// plain structs, and leaves to msgpack/v5 what it must.
func TestUnmarshalFastPathTaken(t *testing.T) {
	for _, g := range goldens {
		b, _ := abi.Marshal(g.v)
		if !abi.FastHandles(b, g.new()) {
			t.Errorf("%s: not decoded by the fast path", g.name)
		}
	}
	seeds := fastSeeds(t)
	enc3 := func(v any) []byte { b, _ := msgpack.Marshal(v); return b }
	if !abi.FastHandles(seeds[0], new(fastAll)) {
		t.Error("fastAll: not decoded by the fast path")
	}
	for _, c := range []struct {
		data []byte
		v    any
		why  string
	}{
		{seeds[1], new(fastAll), "-5 into a uint64"},
		{seeds[2], new(fastAll), "300 into a named uint8"},
		{seeds[10], new(fastFloat), "a float field"},
		{enc3([]any{1, 2}), new(fastAll), "a struct from an array of the wrong length"},
		{seeds[0], &fastAll{U: 1}, "a value that is not zero"},
	} {
		if abi.FastHandles(c.data, c.v) {
			t.Errorf("%s: decoded by the fast path", c.why)
		}
	}
}

// FuzzUnmarshalFast: whatever the input, Unmarshal's fast path answers as
// msgpack/v5 does (an error, the same error; a value, the same value).
func FuzzUnmarshalFast(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add(s)
	}
	f.Add(bytes.Repeat([]byte{0x91}, 70))
	f.Fuzz(checkFastMatchesSlow)
}

// BenchmarkUnmarshal: the native cost of Unmarshal on what the host decodes
// with it (host entries, answers of forwarded calls) and on a plugin's
// record; Validate alone for comparison.
func BenchmarkUnmarshal(b *testing.B) {
	type tx struct {
		Index  uint64 `msgpack:"index"`
		Time   int64  `msgpack:"time"`
		Kind   string `msgpack:"kind"`
		From   string `msgpack:"from,omitempty"`
		To     string `msgpack:"to"`
		Amount uint64 `msgpack:"amount"`
		Ref    string `msgpack:"ref,omitempty"`
	}
	rec, _ := msgpack.Marshal(tx{Index: 123456, Time: 1740819600000000000, Kind: "transfer", From: "savings-account-0001",
		To: "checking-account-0002", Amount: 123456789, Ref: "invoice-2025-03-000123-payment-ref"})
	batch, _ := abi.Marshal(abi.Batch{{Index: 1, Term: 1, Time: 1, Data: make([]byte, 100)}, {Index: 2, Term: 1, Time: 2, Data: make([]byte, 100)}})
	mig, _ := abi.Marshal(abi.Migration{FromHash: "ab12", FromVersion: "1.0.0", Index: 42})
	b.Run("transaction", func(b *testing.B) {
		for range b.N {
			var v tx
			if err := abi.Unmarshal(rec, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		for range b.N {
			var v abi.Batch
			if err := abi.Unmarshal(batch, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("migration", func(b *testing.B) {
		for range b.N {
			var v abi.Migration
			if err := abi.Unmarshal(mig, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate", func(b *testing.B) {
		for range b.N {
			if err := abi.Validate(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestUnmarshalConcurrent: plans are built and read from many goroutines at
// once (the host decodes on several); run with -race.
func TestUnmarshalConcurrent(t *testing.T) {
	type a struct {
		X uint16   `msgpack:"x"`
		Y []string `msgpack:"y"`
	}
	type b struct {
		A *a    `msgpack:"a"`
		L []a   `msgpack:"l"`
		N int32 `msgpack:"n"`
	}
	data, _ := msgpack.Marshal(b{A: &a{X: 1, Y: []string{"y"}}, L: []a{{X: 2}}, N: -3})
	done := make(chan error)
	for i := range 8 {
		go func() {
			var err error
			for range 200 {
				if i%2 == 0 {
					var v b
					err = errors.Join(err, abi.Unmarshal(data, &v))
				} else {
					var v []a
					err = errors.Join(err, abi.Unmarshal([]byte{0x91, 0x81, 0xa1, 'x', 7}, &v))
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

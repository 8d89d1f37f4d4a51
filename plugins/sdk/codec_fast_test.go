package sdk

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

type (
	encName  string
	encInner struct {
		Z     uint32   `msgpack:"z"`
		A     string   `msgpack:"a,omitempty"`
		List  []string `msgpack:"list"`
		Ptr   *int16   `msgpack:"ptr,omitempty"`
		Bytes []byte   `msgpack:"bytes,omitempty"`
	}
	encAll struct {
		U      uint64     `msgpack:"u"`
		I      int64      `msgpack:"i"`
		I8     int8       `msgpack:"i8,omitempty"`
		U8     uint8      `msgpack:"u8"`
		I16    int16      `msgpack:"i16"`
		U32    uint32     `msgpack:"u32,omitempty"`
		N      int        `msgpack:"n"`
		Code   abi.Code   `msgpack:"code"`
		S      string     `msgpack:"s,omitempty"`
		Name   encName    `msgpack:"name"`
		B      []byte     `msgpack:"b"`
		T      bool       `msgpack:"t,omitempty"`
		P      *uint32    `msgpack:"p"`
		PS     *encInner  `msgpack:"ps"`
		L      []uint16   `msgpack:"l,omitempty"`
		SS     []string   `msgpack:"ss"`
		In     encInner   `msgpack:"in"`
		LI     []encInner `msgpack:"li"`
		Skip   string     `msgpack:"-"`
		NoTag  uint16     // named by its Go name, which sorts before the tags
		Rec    abi.Record `msgpack:"rec"` // as_array
		Batch  abi.Batch  `msgpack:"batch"`
		Long   string     `msgpack:"a_name_longer_than_thirty_one_bytes"`
		Many   [][]byte   `msgpack:"many"`
		hidden int
	}
	// encFloat has a field the fast path leaves to msgpack/v5.
	encFloat struct {
		A uint64  `msgpack:"a"`
		F float64 `msgpack:"f"`
	}
)

func randAll(r *rand.Rand) encAll {
	str := func() string {
		return string(bytes.Repeat([]byte{'x'}, []int{0, 1, 31, 32, 255, 256, 70000}[r.IntN(7)]))
	}
	bs := func() []byte {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		return []byte(str())
	}
	u := func() uint64 { return r.Uint64() >> r.IntN(64) }
	i := func() int64 { return int64(r.Uint64()) >> r.IntN(64) }
	inner := func() encInner {
		in := encInner{Z: uint32(u()), A: str(), Bytes: bs()}
		if r.IntN(2) == 0 {
			in.List = make([]string, r.IntN(20))
		}
		if r.IntN(2) == 0 {
			d := int16(i())
			in.Ptr = &d
		}
		return in
	}
	a := encAll{U: u(), I: i(), I8: int8(i()), U8: uint8(u()), I16: int16(i()), U32: uint32(u()), N: int(i()),
		Code: abi.Code(u()), S: str(), Name: encName(str()), B: bs(), T: r.IntN(2) == 0, In: inner(),
		NoTag: uint16(u()), Rec: abi.Record{Key: bs(), Value: bs(), Version: u()}, Long: str(), Skip: "x", hidden: 1}
	if r.IntN(2) == 0 {
		p := uint32(u())
		a.P = &p
	}
	if r.IntN(2) == 0 {
		in := inner()
		a.PS = &in
	}
	for range r.IntN(3) * 9 {
		a.L = append(a.L, uint16(u()))
		a.LI = append(a.LI, inner())
		a.Many = append(a.Many, bs())
		a.Batch = append(a.Batch, abi.Entry{Index: u(), Term: u(), Time: i(), Data: bs()})
	}
	if r.IntN(2) == 0 {
		a.SS = []string{}
	}
	return a
}

func checkMarshal(t *testing.T, v any) {
	t.Helper()
	fast, ok := fastMarshal(v)
	slow, err := marshalSlow(v)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("%T: not encoded by the fast path", v)
	}
	if !bytes.Equal(fast, slow) {
		t.Fatalf("%T %+v:\nfast %x\nslow %x", v, v, fast, slow)
	}
}

// TestMarshalFastMatchesSlow: Marshal's fast path writes exactly the bytes
// msgpack/v5 followed by canonical wrote, for random values of every kind it
// handles, and leaves other types to that path.
func TestMarshalFastMatchesSlow(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		a := randAll(r)
		checkMarshal(t, a)
		checkMarshal(t, &a)
		checkMarshal(t, a.In)
		checkMarshal(t, a.LI)
	}
	for _, v := range []any{(*encAll)(nil), uint64(math.MaxUint64), int8(-33), "s", []byte(nil), true, []string(nil),
		abi.Result{Code: 3, Data: []byte("x")}, abi.Info{Name: "n", Version: "1"}, []abi.Record{{Key: []byte("k")}}, struct{}{},
		struct {
			P *uint32 `msgpack:"p"`
		}{new(uint32)}, // pointer-shaped: held in the interface's word
		struct {
			A uint8 `msgpack:"a"`
			B int8  `msgpack:"b"`
		}{200, -100}} {
		checkMarshal(t, v)
	}
	for _, v := range []any{nil, encFloat{A: 1, F: 1.5}, map[string]int{"b": 1, "a": 2}, []any{1}, [2]byte{}} {
		if _, ok := fastMarshal(v); ok {
			t.Errorf("%T: encoded by the fast path", v)
		}
		b, err := Marshal(v)
		if slow, _ := marshalSlow(v); err != nil || !bytes.Equal(b, slow) {
			t.Errorf("%T: Marshal %x %v, want %x", v, b, err, slow)
		}
	}
}

// FuzzMarshalFast: any value the decoder builds from the input encodes to
// the same bytes on both paths.
func FuzzMarshalFast(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 10 {
		b, _ := msgpack.Marshal(randAll(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a encAll
		if abi.Unmarshal(data, &a) == nil {
			checkMarshal(t, a)
		}
		var in encInner
		if abi.Unmarshal(data, &in) == nil {
			checkMarshal(t, in)
		}
	})
}

// TestMarshalConcurrent: plans are built and read from many goroutines at
// once; run with -race.
func TestMarshalConcurrent(t *testing.T) {
	type a struct {
		X uint16   `msgpack:"x"`
		Y []string `msgpack:"y"`
	}
	type b struct {
		A *a `msgpack:"a"`
		L []a
	}
	done := make(chan bool)
	for i := range 8 {
		go func() {
			ok := true
			for range 200 {
				v := any(b{A: &a{X: 1}, L: []a{{Y: []string{"z"}}}})
				if i%2 == 1 {
					v = []a{{X: uint16(i)}}
				}
				fast, handled := fastMarshal(v)
				slow, _ := marshalSlow(v)
				ok = ok && handled && bytes.Equal(fast, slow)
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Fatal("a concurrent Marshal differed from msgpack/v5's")
		}
	}
}

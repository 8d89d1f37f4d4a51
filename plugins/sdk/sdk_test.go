package sdk

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte("a"), []byte("b")},
		{[]byte("user/"), []byte("user0")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{'a', 0xfe, 0xff, 0xff}, []byte{'a', 0xff}},
		{[]byte{0xff, 0xff}, nil},
		{[]byte{0}, []byte{1}},
	} {
		got := PrefixEnd(c.in)
		if !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("PrefixEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	in := []byte("ab")
	PrefixEnd(in)[0] = 'z'
	if string(in) != "ab" {
		t.Error("PrefixEnd modified its argument")
	}
}

func TestEntryNowAndSeed(t *testing.T) {
	e := Entry{Index: 10, Term: 2, Time: 1_700_000_000_123_456_789}
	if got := e.Now(); !got.Equal(time.Unix(1_700_000_000, 123_456_789)) || got.Location() != time.UTC {
		t.Errorf("Now = %v", got)
	}
	if e.Seed() != (Entry{Index: 10, Term: 2}).Seed() {
		t.Error("Seed depends on more than term and index")
	}
	// The documented formula, so that other SDKs can match it.
	mix := func(z uint64) uint64 {
		z += 0x9e3779b97f4a7c15
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	if e.Seed() != mix(mix(2)^10) {
		t.Error("Seed does not follow its documented formula")
	}
	seen := map[uint64]bool{}
	for term := uint64(1); term <= 20; term++ {
		for index := uint64(1); index <= 500; index++ {
			s := Entry{Index: index, Term: term}.Seed()
			if seen[s] {
				t.Fatalf("seed of term %d index %d repeats", term, index)
			}
			seen[s] = true
		}
	}
}

func TestErrorResult(t *testing.T) {
	for _, c := range []struct {
		err  error
		code abi.Code
		msg  string
	}{
		{Errorf(abi.CodeConflict, "v%d", 3), abi.CodeConflict, "v3"},
		{fmt.Errorf("wrapped: %w", &abi.Error{Code: abi.CodeNotFound, Message: "nope"}), abi.CodeNotFound, "nope"},
		{Errorf(200, "mine"), 200, "mine"},
		{errors.New("boom"), abi.CodeInternal, "boom"},
		{&abi.Error{Code: abi.CodeOK, Message: "odd"}, abi.CodeInternal, "plugin returned an error with invalid code 0: odd"},
		{&abi.Error{Code: 300, Message: "big"}, abi.CodeInternal, "plugin returned an error with invalid code 300: big"},
	} {
		code, msg := errorResult(c.err)
		if code != c.code || msg != c.msg {
			t.Errorf("errorResult(%v) = %v %q, want %v %q", c.err, code, msg, c.code, c.msg)
		}
	}
}

func TestRegister(t *testing.T) {
	defer func() { registered = nil }()
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("Register(nil)", func() { Register(nil) })
	Register(counter{})
	if registered == nil {
		t.Fatal("Register did not register")
	}
	mustPanic("a second Register", func() { Register(counter{}) })
}

// counter is a small plugin: "inc" adds one to the key "n" and answers its
// new value; "fail" writes, then fails; queries answer n.
type counter struct{}

func (counter) Apply(st State, e Entry) ([]byte, error) {
	v, _, _ := st.Get([]byte("n"))
	n := len(v) + 1
	if err := st.Set([]byte("n"), bytes.Repeat([]byte{'x'}, n)); err != nil {
		return nil, err
	}
	switch string(e.Data) {
	case "inc":
		return []byte(fmt.Sprint(n)), nil
	case "panic":
		panic("counter: panic")
	}
	return nil, Errorf(abi.CodeBadRequest, "unknown command %q", e.Data)
}

func (counter) Query(st State, q []byte) ([]byte, error) {
	if err := st.Set([]byte("n"), nil); err == nil {
		return nil, errors.New("a query could write")
	}
	v, ver, ok := st.Get([]byte("n"))
	if !ok {
		return nil, Errorf(abi.CodeNotFound, "no n")
	}
	return []byte(fmt.Sprintf("%d@%d", len(v), ver)), nil
}

func (counter) Migrate(st State, m abi.Migration) error {
	if err := st.Set([]byte("migrated"), []byte(m.FromVersion)); err != nil {
		return err
	}
	if m.FromVersion == "bad" {
		return Errorf(abi.CodeConflict, "cannot migrate from %s", m.FromVersion)
	}
	return nil
}

func TestMemStateApplyIsAtomicPerEntry(t *testing.T) {
	st := NewMemState()
	var p counter
	rs := st.Apply(p,
		abi.Entry{Index: 1, Term: 1, Data: []byte("inc")},
		abi.Entry{Index: 2, Term: 1, Data: []byte("oops")},
		abi.Entry{Index: 3, Term: 1, Data: []byte("inc")},
	)
	want := []abi.Result{{Code: abi.CodeOK, Data: []byte("1")}, {Code: abi.CodeBadRequest, Data: []byte(`unknown command "oops"`)}, {Code: abi.CodeOK, Data: []byte("2")}}
	for i := range want {
		if rs[i].Code != want[i].Code || !bytes.Equal(rs[i].Data, want[i].Data) {
			t.Errorf("result %d = %v %q, want %v %q", i, rs[i].Code, rs[i].Data, want[i].Code, want[i].Data)
		}
	}
	if r := st.Query(p, nil); r.Code != abi.CodeOK || string(r.Data) != "2@3" {
		t.Errorf("query = %v %q, want 2@3", r.Code, r.Data)
	}
	if got := st.Query(counter{}, nil); got.Code != abi.CodeOK {
		t.Fatal(got)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a panic in Apply was recovered")
			}
		}()
		st.Apply(p, abi.Entry{Index: 4, Data: []byte("panic")})
	}()
}

func TestMemStateMigrate(t *testing.T) {
	st := NewMemState()
	if r := st.Migrate(counter{}, abi.Migration{FromVersion: "bad", Index: 5}); r.Code != abi.CodeConflict {
		t.Fatalf("failed migration: %v", r)
	}
	if st.Len() != 0 {
		t.Fatal("a failed migration kept its writes")
	}
	if r := st.Migrate(counter{}, abi.Migration{FromVersion: "0.9", Index: 6}); r.Code != abi.CodeOK {
		t.Fatalf("migration: %v", r)
	}
	v, ver, ok := st.Get([]byte("migrated"))
	if !ok || string(v) != "0.9" || ver != 6 {
		t.Fatalf("migrated = %q @%d %v", v, ver, ok)
	}
	if r := st.Migrate(plain{}, abi.Migration{Index: 7}); r.Code != abi.CodeOK {
		t.Fatalf("a plugin without Migrator: %v", r)
	}
}

type plain struct{}

func (plain) Apply(State, Entry) ([]byte, error)  { return nil, nil }
func (plain) Query(State, []byte) ([]byte, error) { return nil, nil }

func TestMemStateOperations(t *testing.T) {
	st := NewMemState()
	st.SetIndex(7)
	for _, k := range []string{"b", "a", "c", "ab", "\xff"} {
		if err := st.Set([]byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	v, ver, ok := st.Get([]byte("ab"))
	if !ok || string(v) != "vab" || ver != 7 {
		t.Fatalf("Get = %q %d %v", v, ver, ok)
	}
	// The answer is only valid until the next call, as in wasm.
	st.Get([]byte("c"))
	if string(v) == "vab" {
		t.Error("Get's answer survived the next call: MemState should reuse its buffer")
	}
	if _, _, ok := st.Get([]byte("zz")); ok {
		t.Error("Get of an absent key")
	}
	st.SetIndex(8)
	if existed, err := st.Delete([]byte("b")); !existed || err != nil {
		t.Fatalf("Delete = %v %v", existed, err)
	}
	if existed, err := st.Delete([]byte("b")); existed || err != nil {
		t.Fatalf("second Delete = %v %v", existed, err)
	}
	if err := st.Set([]byte("b"), nil); err != nil {
		t.Fatal(err)
	}
	keys := func(recs []abi.Record) string {
		var b bytes.Buffer
		for _, r := range recs {
			fmt.Fprintf(&b, "%s@%d,", r.Key, r.Version)
		}
		return b.String()
	}
	for _, c := range []struct {
		start, end string
		limit      int
		want       string
	}{
		{"", "", 100, "a@7,ab@7,b@8,c@7,\xff@7,"},
		{"a", "b", 100, "a@7,ab@7,"},
		{"ab", "", 2, "ab@7,b@8,"},
		{"c", "c", 10, ""},
		{"d", "a", 10, ""},
		{"\xff", "", 1, "\xff@7,"},
	} {
		var end []byte
		if c.end != "" {
			end = []byte(c.end)
		}
		recs, err := st.Scan([]byte(c.start), end, c.limit)
		if err != nil || keys(recs) != c.want {
			t.Errorf("Scan(%q, %q, %d) = %q, %v; want %q", c.start, c.end, c.limit, keys(recs), err, c.want)
		}
	}
	for _, limit := range []int{0, -1, abi.MaxScanLimit + 1} {
		if _, err := st.Scan(nil, nil, limit); !errors.Is(err, &abi.Error{Code: abi.CodeBadRequest}) {
			t.Errorf("Scan limit %d: %v", limit, err)
		}
	}
	if d := st.Dump(); keys(d) != "a@7,ab@7,b@8,c@7,\xff@7," || len(d[2].Value) != 0 {
		t.Errorf("Dump = %q", keys(d))
	}
}

func TestMemStateErrors(t *testing.T) {
	st := NewMemState()
	big := make([]byte, abi.MaxValueSize+1)
	for _, c := range []struct {
		err  error
		code abi.Code
	}{
		{st.Set(nil, []byte("v")), abi.CodeBadRequest},
		{st.Set(make([]byte, abi.MaxKeySize+1), nil), abi.CodeTooLarge},
		{st.Set([]byte("k"), big), abi.CodeTooLarge},
		{second(st.Delete(nil)), abi.CodeBadRequest},
		{st.ReadOnly().Set([]byte("k"), nil), abi.CodeReadOnly},
		{second(st.ReadOnly().Delete([]byte("k"))), abi.CodeReadOnly},
	} {
		if !errors.Is(c.err, &abi.Error{Code: c.code}) {
			t.Errorf("error %v, want code %v", c.err, c.code)
		}
	}
	if err := st.Set(make([]byte, abi.MaxKeySize), make([]byte, abi.MaxValueSize)); err != nil {
		t.Fatalf("largest key and value: %v", err)
	}
	// Two records of the largest size do not fit one scan answer; one does.
	if err := st.Set([]byte("k2"), make([]byte, abi.MaxValueSize)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Scan(nil, nil, 2); !errors.Is(err, &abi.Error{Code: abi.CodeTooLarge}) {
		t.Errorf("scan of 2 MiB: %v, want too_large", err)
	}
	if recs, err := st.Scan(nil, nil, 1); err != nil || len(recs) != 1 {
		t.Errorf("scan of one large record: %d records, %v", len(recs), err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestMemStateRollbackKeepsOrder undoes creations, deletions and updates and
// checks that scans still see exactly the surviving keys.
func TestMemStateRollbackKeepsOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	st := NewMemState()
	model := map[string]string{}
	for i := 1; i <= 3000; i++ {
		var writes [][2]string
		for n := r.IntN(4); n >= 0; n-- {
			writes = append(writes, [2]string{fmt.Sprint(r.IntN(60)), fmt.Sprint(r.IntN(3))})
		}
		fail := r.IntN(3) == 0
		p := script{writes: writes, fail: fail}
		res := st.Apply(p, abi.Entry{Index: uint64(i)})
		if (res[0].Code == abi.CodeOK) == fail {
			t.Fatalf("entry %d: %v", i, res[0])
		}
		if !fail {
			for _, w := range writes {
				if w[1] == "0" {
					delete(model, w[0])
				} else {
					model[w[0]] = w[1]
				}
			}
		}
		if i%50 == 0 {
			recs, err := st.Scan(nil, nil, abi.MaxScanLimit)
			if err != nil || len(recs) != len(model) || st.Len() != len(model) {
				t.Fatalf("entry %d: scan has %d keys (%v), Len %d, want %d", i, len(recs), err, st.Len(), len(model))
			}
			for j, rec := range recs {
				if model[string(rec.Key)] != string(rec.Value) || (j > 0 && bytes.Compare(recs[j-1].Key, rec.Key) >= 0) {
					t.Fatalf("entry %d: record %q=%q out of order or wrong", i, rec.Key, rec.Value)
				}
			}
		}
	}
}

// script writes (value "0" deletes), then succeeds or fails.
type script struct {
	writes [][2]string
	fail   bool
}

func (s script) Apply(st State, e Entry) ([]byte, error) {
	for _, w := range s.writes {
		var err error
		if w[1] == "0" {
			_, err = st.Delete([]byte(w[0]))
		} else {
			err = st.Set([]byte(w[0]), []byte(w[1]))
		}
		if err != nil {
			return nil, err
		}
	}
	if s.fail {
		return nil, errors.New("scripted failure")
	}
	return nil, nil
}

func (script) Query(State, []byte) ([]byte, error) { return nil, nil }

func TestEntryOf(t *testing.T) {
	st := NewMemState()
	var seen Entry
	st.Apply(funcPlugin(func(st State, e Entry) { seen = EntryOf(st) }), abi.Entry{Index: 9, Term: 4, Time: 77, Data: []byte("x")})
	if seen.Index != 9 || seen.Term != 4 || seen.Time != 77 || seen.Data != nil {
		t.Errorf("EntryOf during Apply = %+v", seen)
	}
	if e := EntryOf(st.ReadOnly()); e.Index != 0 || e.Term != 0 {
		t.Errorf("EntryOf during a query = %+v", e)
	}
	if e := EntryOf(nil); e.Index != 0 {
		t.Errorf("EntryOf(nil) = %+v", e)
	}
}

type funcPlugin func(st State, e Entry)

func (f funcPlugin) Apply(st State, e Entry) ([]byte, error) { f(st, e); return nil, nil }
func (f funcPlugin) Query(State, []byte) ([]byte, error)     { return nil, nil }

// TestDecodeEntry checks the batch decoder's fast path against the general
// one on every integer encoding, both data types, and truncations.
func TestDecodeEntry(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ints := []func(b []byte, v int64) []byte{
		func(b []byte, v int64) []byte { return mp.AppendInt(b, v) },
		func(b []byte, v int64) []byte {
			return append(b, 0xd3, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		},
		func(b []byte, v int64) []byte {
			if v < 0 {
				return mp.AppendInt(b, v)
			}
			return append(b, 0xcf, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		},
		func(b []byte, v int64) []byte {
			if v >= math.MinInt32 && v <= math.MaxInt32 {
				return append(b, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
			}
			return mp.AppendInt(b, v)
		},
	}
	values := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 31, 1 << 32, math.MaxInt64, -1, -32, -33, -200, -70000, math.MinInt64}
	for i := 0; i < 20000; i++ {
		var b []byte
		b = append(b, 0x94)
		vals := [3]int64{values[r.IntN(len(values))], values[r.IntN(len(values))], values[r.IntN(len(values))]}
		for _, v := range vals {
			b = ints[r.IntN(len(ints))](b, v)
		}
		data := make([]byte, r.IntN(300))
		switch r.IntN(4) {
		case 0:
			b = mp.AppendStringBytes(b, data)
		case 1:
			b = mp.AppendNil(b)
			data = nil
		default:
			b = mp.AppendBytes(b, data)
		}
		if r.IntN(3) == 0 {
			b = b[:r.IntN(len(b)+1)]
		}
		b = append(b, make([]byte, r.IntN(50))...) // what follows in the batch
		wantE, wantErr := readEntry(mp.NewReader(b))
		var gotE Entry
		next, ok := decodeEntry(b, 0, &gotE)
		if !ok {
			continue
		}
		if wantErr != nil {
			t.Fatalf("decodeEntry accepted % x, readEntry: %v", b, wantErr)
		}
		rd := mp.NewReader(b)
		readEntry(rd)
		if gotE.Index != wantE.Index || gotE.Term != wantE.Term || gotE.Time != wantE.Time ||
			!bytes.Equal(gotE.Data, wantE.Data) || next != rd.Offset() || cap(gotE.Data) != len(gotE.Data) {
			t.Fatalf("% x: decodeEntry %+v next %d, readEntry %+v next %d", b, gotE, next, wantE, rd.Offset())
		}
	}
	// The host's own encoder (fixed-width integers, nil for empty data).
	batch, err := msgpack.Marshal(abi.Batch{{Index: 1, Term: 2, Time: -3, Data: []byte("abc")}, {Index: 4, Data: nil}})
	if err != nil {
		t.Fatal(err)
	}
	rd := mp.NewReader(batch)
	if n, _ := rd.ReadArrayHeader(); n != 2 {
		t.Fatal(n)
	}
	var e Entry
	next, ok := decodeEntry(batch, rd.Offset(), &e)
	if !ok || e.Index != 1 || e.Term != 2 || e.Time != -3 || string(e.Data) != "abc" {
		t.Fatalf("decodeEntry of msgpack/v5's encoding: %+v %v", e, ok)
	}
	rd = mp.NewReader(batch[next:])
	if e, err := readEntry(rd); err != nil || e.Index != 4 || e.Data != nil {
		t.Fatalf("readEntry of a nil data: %+v %v", e, err)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte{0x94, 1, 2, 3, 0xc4, 1, 'x'}, uint8(0))
	f.Add([]byte{0x94, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0xd3, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xa1, 'x'}, uint8(40))
	f.Fuzz(func(t *testing.T, b []byte, pad uint8) {
		b = append(b, make([]byte, pad)...)
		var gotE Entry
		next, ok := decodeEntry(b, 0, &gotE)
		if !ok {
			return
		}
		rd := mp.NewReader(b)
		wantE, err := readEntry(rd)
		if err != nil || gotE.Index != wantE.Index || gotE.Term != wantE.Term || gotE.Time != wantE.Time ||
			!bytes.Equal(gotE.Data, wantE.Data) || next != rd.Offset() {
			t.Fatalf("% x: decodeEntry %+v %d, readEntry %+v %d %v", b, gotE, next, wantE, rd.Offset(), err)
		}
	})
}

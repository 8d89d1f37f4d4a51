package sdk_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

type addReq struct {
	Name string `msgpack:"name"`
	N    int64  `msgpack:"n"`
}

// Check runs after decoding, in Apply, Query and ValidateCommand.
func (r *addReq) Check() error {
	if len(r.Name) > 8 {
		return fmt.Errorf("name %q is longer than 8 bytes", r.Name)
	}
	return nil
}

type countResp struct {
	Name  string `msgpack:"name"`
	Count int64  `msgpack:"count"`
}

var counts = sdk.NewMap[string, int64]("c/", sdk.StringKey)

func counterRouter() *sdk.Router {
	r := sdk.NewRouter(abi.Info{Name: "counter", Version: "1.0.0"})
	sdk.Command(r, "add", func(st sdk.State, e sdk.Entry, req addReq) (countResp, error) {
		if req.N <= 0 {
			return countResp{}, sdk.BadRequest("n must be positive")
		}
		n, err := counts.Update(st, req.Name, func(n int64, _ bool) (int64, error) { return n + req.N, nil })
		return countResp{req.Name, n}, err
	})
	sdk.Query(r, "get", func(st sdk.State, req struct {
		Name string `msgpack:"name"`
	}) (countResp, error) {
		n, err := counts.Load(st, req.Name)
		return countResp{req.Name, n}, err
	})
	return r
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := sdk.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRouter(t *testing.T) {
	r := counterRouter()
	st := sdk.NewMemState()
	res := st.Apply(r,
		abi.Entry{Index: 1, Data: mustMarshal(t, map[string]any{"op": "add", "name": "a", "n": 2})},
		abi.Entry{Index: 2, Data: mustMarshal(t, map[string]any{"op": "add", "name": "a", "n": 3, "extra": []int{1}})},
	)
	for _, x := range res {
		if !x.OK() {
			t.Fatal(x.Err())
		}
	}
	var got countResp
	if err := sdk.Unmarshal(res[1].Data, &got); err != nil || got != (countResp{"a", 5}) {
		t.Fatalf("result %x = %+v, %v", res[1].Data, got, err)
	}
	q := st.Query(r, mustMarshal(t, map[string]any{"op": "get", "name": "a"}))
	if err := sdk.Unmarshal(q.Data, &got); err != nil || got.Count != 5 {
		t.Fatalf("query = %+v %v", got, q.Err())
	}
	if q := st.Query(r, mustMarshal(t, map[string]any{"op": "get", "name": "zz"})); q.Code != abi.CodeNotFound {
		t.Errorf("missing name: %v", q.Err())
	}
	if q := st.Query(r, mustMarshal(t, map[string]any{"op": "nope"})); q.Code != abi.CodeBadRequest || !strings.Contains(q.Err().Error(), `unknown query op "nope" (queries: `) {
		t.Errorf("unknown query op: %v", q.Err())
	}

	// Every malformed input is a bad_request that says what is wrong, and
	// changes nothing.
	for _, c := range []struct {
		in   any
		want string
	}{
		{"add", "expected a MsgPack map"},
		{[]any{"add"}, "expected a MsgPack map"},
		{map[string]any{"name": "a"}, `missing "op"`},
		{map[string]any{"op": 7}, `"op" field must be a string`},
		{map[string]any{"op": "sub"}, `unknown command op "sub" (commands: add)`},
		{map[string]any{"op": "get"}, `op "get" is a query`},
		{map[string]any{"op": "add", "name": 5, "n": 1}, "bad input for sdk_test.addReq"},
		{map[string]any{"op": "add", "name": "a", "n": "x"}, "bad input"},
		{map[string]any{"op": "add", "name": "a", "n": -1}, "n must be positive"},
		{map[string]any{"op": "add", "name": "abcdefghi", "n": 1}, `name "abcdefghi" is longer than 8 bytes`},
	} {
		data := mustMarshal(t, c.in)
		res := st.Apply(r, abi.Entry{Index: 3, Data: data})[0]
		if res.Code != abi.CodeBadRequest || !strings.Contains(string(res.Data), c.want) {
			t.Errorf("%v: %v, want bad_request containing %q", c.in, res.Err(), c.want)
		}
		if c.want == "n must be positive" {
			continue // decodes: only Apply can tell
		}
		if err := r.ValidateCommand(data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateCommand(%v) = %v, want %q", c.in, err, c.want)
		}
	}
	for _, bad := range [][]byte{nil, {0xc1}, {0x82, 0xa2, 'o', 'p'}, {0xdf, 0xff, 0xff, 0xff, 0xff}} {
		if res := st.Apply(r, abi.Entry{Index: 4, Data: bad})[0]; res.Code != abi.CodeBadRequest {
			t.Errorf("%x: %v", bad, res.Err())
		}
	}
	if q := st.Query(r, mustMarshal(t, map[string]any{"op": "add"})); q.Code != abi.CodeBadRequest || !strings.Contains(string(q.Data), "is a command") {
		t.Errorf("command as query: %v", q.Err())
	}
	if err := r.ValidateCommand(mustMarshal(t, map[string]any{"op": "add", "name": "b", "n": 1})); err != nil {
		t.Error(err)
	}
	if n, _ := counts.Load(st, "a"); n != 5 || st.Len() != 1 {
		t.Errorf("bad inputs changed the state: a=%d, %d keys", n, st.Len())
	}
	if r.Info().Name != "counter" {
		t.Error(r.Info())
	}
}

func TestRouterRegistrationPanics(t *testing.T) {
	r := sdk.NewRouter(abi.Info{})
	sdk.Command(r, "x", func(sdk.State, sdk.Entry, struct{}) (int, error) { return 0, nil })
	for name, f := range map[string]func(){
		"twice": func() { sdk.Query(r, "x", func(sdk.State, struct{}) (int, error) { return 0, nil }) },
		"empty": func() { sdk.Command(r, "", func(sdk.State, sdk.Entry, struct{}) (int, error) { return 0, nil }) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestResultIsMsgPack(t *testing.T) {
	// The trap the issue found in the old godoc Counter: strconv.Itoa(5) is
	// the byte '5', which the API renders as the MsgPack fixint 53.
	b, err := sdk.Result(5)
	if err != nil || !bytes.Equal(b, []byte{0x05}) {
		t.Errorf("Result(5) = %x, %v", b, err)
	}
	if b, _ := sdk.Result(nil); !bytes.Equal(b, []byte{0xc0}) {
		t.Errorf("Result(nil) = %x", b)
	}
	if _, err := sdk.Result(func() {}); !errors.Is(err, &abi.Error{Code: abi.CodeInternal}) {
		t.Errorf("Result(func) = %v", err)
	}
}

func TestItemAndSequence(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	it := sdk.NewItem[countResp]("cfg")
	if _, err := it.Load(st); !errors.Is(err, &abi.Error{Code: abi.CodeNotFound}) {
		t.Errorf("Load of nothing: %v", err)
	}
	if v, ok, err := it.MayLoad(st); ok || err != nil || v != (countResp{}) {
		t.Errorf("MayLoad = %v %v %v", v, ok, err)
	}
	if v, _ := it.LoadOr(st, countResp{Name: "d"}); v.Name != "d" {
		t.Error(v)
	}
	if err := it.Save(st, countResp{"x", 1}); err != nil {
		t.Fatal(err)
	}
	if v, err := it.Load(st); err != nil || v != (countResp{"x", 1}) {
		t.Errorf("Load = %v %v", v, err)
	}
	boom := errors.New("boom")
	if _, err := it.Update(st, func(v countResp, ok bool) (countResp, error) { return countResp{"y", 9}, boom }); err != boom {
		t.Error(err)
	}
	if v, _ := it.Load(st); v.Name != "x" {
		t.Errorf("a failed Update saved %v", v)
	}
	if err := it.Remove(st); err != nil || st.Len() != 0 {
		t.Errorf("Remove: %v, %d keys", err, st.Len())
	}
	// A stored value of the wrong shape is an internal error, not a zero value.
	st.Set([]byte("cfg"), []byte{0x01})
	if _, err := it.Load(st); !errors.Is(err, &abi.Error{Code: abi.CodeInternal}) {
		t.Errorf("Load of a bad value: %v", err)
	}

	seq := sdk.NewSequence("seq")
	for want := uint64(1); want <= 3; want++ {
		if n, err := seq.Next(st); err != nil || n != want {
			t.Fatalf("Next = %d %v, want %d", n, err, want)
		}
	}
	if n, _ := seq.Current(st); n != 3 {
		t.Error(n)
	}
}

// Encoded keys sort as the keys do, for every codec.
func TestKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	checkOrder(t, "uint64", sdk.Uint64Key, func() uint64 { return rng.Uint64() >> rng.UintN(64) }, cmp.Compare[uint64])
	checkOrder(t, "int64", sdk.Int64Key, func() int64 { return int64(rng.Uint64()) >> rng.UintN(64) }, cmp.Compare[int64])
	checkOrder(t, "string", sdk.StringKey, func() string { return fmt.Sprint(rng.IntN(1000)) }, strings.Compare)
	pk := sdk.PairKey(sdk.Uint64Key, sdk.StringKey)
	checkOrder(t, "pair", pk, func() sdk.Pair[uint64, string] {
		return sdk.Pair[uint64, string]{A: uint64(rng.IntN(5)), B: fmt.Sprint(rng.IntN(100))}
	}, func(a, b sdk.Pair[uint64, string]) int {
		return cmp.Or(cmp.Compare(a.A, b.A), strings.Compare(a.B, b.B))
	})
	for _, bad := range [][]byte{{1}, {0, 9, 1}} {
		if _, err := pk.DecodeKey(bad); err == nil {
			t.Errorf("pair key %x decoded", bad)
		}
	}
}

func checkOrder[K any](t *testing.T, name string, c sdk.KeyCodec[K], gen func() K, compare func(a, b K) int) {
	t.Helper()
	for range 2000 {
		a, b := gen(), gen()
		ea, eb := c.AppendKey(nil, a), c.AppendKey(nil, b)
		if got, want := bytes.Compare(ea, eb), compare(a, b); got != want {
			t.Fatalf("%s: %v vs %v: encodings compare %d, keys %d", name, a, b, got, want)
		}
		if d, err := c.DecodeKey(ea); err != nil || compare(d, a) != 0 {
			t.Fatalf("%s: %v decoded as %v, %v", name, a, d, err)
		}
	}
}

// The iterators page through more than one Scan page, hand out copies that
// stay valid while the loop body uses the state, and let the body write.
func TestIterators(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	m := sdk.NewMap[uint64, string]("m/", sdk.Uint64Key)
	const n = 3*sdk.ScanPage + 7
	for i := uint64(n); i >= 1; i-- { // saved in reverse, iterated in order
		if err := m.Save(st, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Set([]byte("m0"), []byte("after the prefix"))
	st.Set([]byte("l"), []byte("before it"))

	var err error
	var keys []uint64
	var raw [][]byte
	for k, v := range m.All(st, &err) {
		if v != fmt.Sprint("v", k) {
			t.Fatalf("%d = %q", k, v)
		}
		keys = append(keys, k)
		// Reading and writing in the body: the old Scan pages would be
		// overwritten by this Get.
		st.Get([]byte("l"))
		if _, err := m.Remove(st, k); err != nil {
			t.Fatal(err)
		}
		if err := st.Set(fmt.Appendf(nil, "z/%08d", k), []byte("moved")); err != nil {
			t.Fatal(err)
		}
	}
	if err != nil || len(keys) != n || !slices.IsSorted(keys) || keys[0] != 1 {
		t.Fatalf("All: %d keys, sorted %v, err %v", len(keys), slices.IsSorted(keys), err)
	}
	for k, v := range sdk.ScanPrefix(st, []byte("z/"), &err) {
		raw = append(raw, k, v)
		st.Get([]byte("m0"))
	}
	if err != nil || len(raw) != 2*n || string(raw[0]) != "z/00000001" || string(raw[1]) != "moved" || string(raw[2*n-2]) != fmt.Sprintf("z/%08d", n) {
		t.Fatalf("ScanPrefix kept slices are not copies: %q %q, %d, %v", raw[0], raw[1], len(raw), err)
	}

	// From, Range, and an early break.
	for i := uint64(1); i <= 10; i++ {
		m.Save(st, i, "x")
	}
	collect := func(seq func(func(uint64, string) bool)) (out []uint64) {
		for k := range seq {
			out = append(out, k)
		}
		return out
	}
	if got := collect(m.From(st, 8, &err)); !slices.Equal(got, []uint64{8, 9, 10}) {
		t.Error("From", got)
	}
	if got := collect(m.Range(st, 3, 5, &err)); !slices.Equal(got, []uint64{3, 4}) {
		t.Error("Range", got)
	}
	for k := range m.All(st, &err) {
		if k == 2 {
			break
		}
	}

	// A value that does not decode ends the loop with an error.
	st.Set(m.Key(4), []byte{0xc1})
	err = nil
	if got := collect(m.All(st, &err)); len(got) != 3 || !errors.Is(err, &abi.Error{Code: abi.CodeInternal}) {
		t.Errorf("bad value: %v, %v", got, err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a failure with a nil errp did not panic")
			}
		}()
		collect(m.All(st, nil))
	}()
}

// Values too large for a page of ScanPage records make the iterator ask for
// fewer at a time.
func TestIteratorLargeValues(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	big := bytes.Repeat([]byte("x"), abi.MaxValueSize-100)
	for i := range 5 {
		if err := st.Set([]byte{'b', byte(i)}, big); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	n := 0
	for _, v := range sdk.ScanPrefix(st, []byte("b"), &err) {
		if len(v) != len(big) {
			t.Fatal(len(v))
		}
		n++
	}
	if err != nil || n != 5 {
		t.Fatalf("%d values, %v", n, err)
	}
}

func TestPrefix(t *testing.T) {
	st := sdk.NewMemState()
	st.SetIndex(1)
	h := sdk.NewMap[sdk.Pair[string, uint64], byte]("h/", sdk.PairKey(sdk.StringKey, sdk.Uint64Key))
	for _, p := range []sdk.Pair[string, uint64]{{"bob", 9}, {"al", 5}, {"bob", 2}, {"bo", 1}, {"bobby", 3}} {
		h.Save(st, p, 1)
	}
	var err error
	var got []uint64
	for b := range sdk.Prefix(h, st, "bob", &err) {
		got = append(got, b)
	}
	if err != nil || !slices.Equal(got, []uint64{2, 9}) {
		t.Errorf("Prefix(bob) = %v, %v", got, err)
	}
}

// Go randomises map iteration; Marshal must not pass that on, or a stored
// value would differ between replicas.
func TestMarshalIsDeterministic(t *testing.T) {
	type inner struct {
		M map[uint64]string `msgpack:"m"`
	}
	v := map[string]any{"list": []any{map[int]int{}, inner{M: map[uint64]string{}}}, "n": map[string]int{}}
	for i := range 50 {
		v["n"].(map[string]int)[fmt.Sprint("k", i)] = i
		v["list"].([]any)[0].(map[int]int)[i*7%50] = i
		v["list"].([]any)[1].(inner).M[uint64(i*13)] = "x"
	}
	first, err := sdk.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if b, _ := sdk.Marshal(v); !bytes.Equal(b, first) {
			t.Fatal("two encodings of one value differ")
		}
	}
	b, _ := sdk.Marshal(map[string]int{"queued": 1, "leased": 2, "b": 3})
	if want := "\x83\xa1b\x03\xa6leased\x02\xa6queued\x01"; string(b) != want {
		t.Errorf("Marshal = %q, want %q", b, want)
	}
	var back struct {
		N map[string]int `msgpack:"n"`
	}
	if err := sdk.Unmarshal(first, &back); err != nil || len(back.N) != 50 || back.N["k7"] != 7 {
		t.Errorf("the canonical form does not decode: %v", err)
	}
}

package kvstore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// The client encoders write the canonical encoding: pinned here byte for
// byte, so that a change of layout is seen (the plugin's fast paths are keyed
// to it), and checked against ParseCommand, ParseQuery and the fast paths.
func TestEncodersGolden(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"SET", append(AppendSetHead(nil, OpSet, "k", 1), 'v'),
			"\x83\xa2op\xa3SET\xa3key\xc4\x01k\xa5value\xc4\x01v"},
		{"CAS", AppendCASVersion(append(AppendSetHead(nil, OpCAS, "k", 1), 'v'), 300),
			"\x84\xa2op\xa3CAS\xa3key\xc4\x01k\xa5value\xc4\x01v\xa7version\xcd\x01\x2c"},
		{"DELETE", AppendDelete(nil, "k", 0, false), "\x82\xa2op\xa6DELETE\xa3key\xc4\x01k"},
		{"DELETE if", AppendDelete(nil, "k", 0, true), "\x83\xa2op\xa6DELETE\xa3key\xc4\x01k\xa7version\x00"},
		{"GET", AppendGet(nil, "k"), "\x82\xa2op\xa3GET\xa3key\xc4\x01k"},
		{"TXN", AppendTxn(nil, []byte{0x90}), "\x82\xa2op\xa3TXN\xa3ops\x90"},
	}
	for _, c := range cases {
		if string(c.got) != c.want {
			t.Errorf("%s: % x, want % x", c.name, c.got, c.want)
		}
	}
}

// encoderKeys and encoderValues cover every bin header width the encoders
// can write for a key and a value.
var (
	encoderKeys   = []string{"k", "a/b", "\x00\xff", strings.Repeat("k", 300), strings.Repeat("x", abi.MaxKeySize)}
	encoderValues = [][]byte{{}, []byte("v"), bytes.Repeat([]byte("v"), 300), bytes.Repeat([]byte("v"), 70000)}
)

func TestEncodersMatchParser(t *testing.T) {
	for _, key := range encoderKeys {
		for _, value := range encoderValues {
			set := append(AppendSetHead(nil, OpSet, key, len(value)), value...)
			if !bytes.Equal(set, Command{Op: OpSet, Key: []byte(key), Value: value}.AppendMsgpack(nil)) {
				t.Fatalf("SET %.10q: AppendSetHead and Command.AppendMsgpack differ", key)
			}
			// The plugin takes its fastest path on every SET the HTTP
			// layer sends.
			if k, v, ok := canonicalSet(set); !ok || string(k) != key || !bytes.Equal(v, value) {
				t.Fatalf("SET %.10q of %d bytes: not taken by canonicalSet", key, len(value))
			}
			checkCommand(t, set, Command{Op: OpSet, Key: []byte(key), Value: value})
			for _, v := range []uint64{0, 1, 200, 1 << 40} {
				cas := AppendCASVersion(append(AppendSetHead(nil, OpCAS, key, len(value)), value...), v)
				checkCommand(t, cas, Command{Op: OpCAS, Key: []byte(key), Value: value, Version: v, HasVersion: true})
			}
		}
		checkCommand(t, AppendDelete(nil, key, 0, false), Command{Op: OpDelete, Key: []byte(key)})
		checkCommand(t, AppendDelete(nil, key, 7, true), Command{Op: OpDelete, Key: []byte(key), Version: 7, HasVersion: true})
		get := AppendGet(nil, key)
		checkCommand(t, get, Command{Op: OpGet, Key: []byte(key)})
		if q, err := ParseQuery(get); err != nil || q.Op != OpGet || string(q.Key) != key {
			t.Fatalf("ParseQuery(AppendGet(%.10q)) = %+v, %v", key, q, err)
		}
	}
	ops := Command{Op: OpTxn, Ops: []Command{{Op: OpSet, Key: []byte("a"), Value: []byte("1")}, {Op: OpDelete, Key: []byte("b")}}}.AppendMsgpack(nil)
	ops = ops[len(AppendTxn(nil, nil)):] // the ops array alone
	txn := AppendTxn(nil, ops)
	checkCommand(t, txn, Command{Op: OpTxn, Ops: []Command{{Op: OpSet, Key: []byte("a"), Value: []byte("1")}, {Op: OpDelete, Key: []byte("b")}}})
	defer func() {
		if recover() == nil {
			t.Error("AppendSetHead(OpDelete) did not panic")
		}
	}()
	AppendSetHead(nil, OpDelete, "k", 0)
}

// checkCommand checks that data is the canonical encoding of want, that
// ParseCommand decodes it to want, and that the plugin's fast path for
// single-key commands takes it.
func checkCommand(t *testing.T, data []byte, want Command) {
	t.Helper()
	if enc := want.AppendMsgpack(nil); !bytes.Equal(data, enc) {
		t.Fatalf("%v %.10q: % .40x, want % .40x", want.Op, want.Key, data, enc)
	}
	got, err := ParseCommand(data)
	if err != nil || !equalCommands(got, want) {
		t.Fatalf("ParseCommand(%v %.10q) = %+v, %v", want.Op, want.Key, got, err)
	}
	var c command
	if want.Op != OpTxn && !fastCommand(data, &c) {
		t.Fatalf("%v %.10q: not taken by fastCommand", want.Op, want.Key)
	}
	checkFastPaths(t, data)
}

// TestResultsRoundTrip runs random commands and queries, built by the client
// encoders, through the plugin and decodes its answers with the client
// decoders: what the plugin encodes, the decoders read, and the answers
// agree with a map.
func TestResultsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	st := sdk.NewMemState()
	type entry struct {
		value   []byte
		version uint64
	}
	model := map[string]entry{}
	keys := []string{"a", "b", "c", strings.Repeat("k", 300), strings.Repeat("x", abi.MaxKeySize)}
	index := uint64(0)
	apply := func(data []byte) abi.Result {
		index++
		return st.Apply(sdkKV{}, abi.Entry{Index: index, Term: 1, Data: data})[0]
	}
	counts := map[string]int{}
	for i := 0; i < 3000; i++ {
		key := keys[r.IntN(len(keys))]
		have, exists := model[key]
		switch r.IntN(5) {
		case 0, 1: // SET or CAS
			value := make([]byte, []int{0, 1, 300, 70000}[r.IntN(4)])
			for j := range value {
				value[j] = byte(r.IntN(256))
			}
			op, want := OpSet, uint64(0)
			if r.IntN(2) == 0 {
				op, want = OpCAS, have.version
				if r.IntN(3) == 0 {
					want++
				}
			}
			data := append(AppendSetHead(nil, op, key, len(value)), value...)
			if op == OpCAS {
				data = AppendCASVersion(data, want)
			}
			res := apply(data)
			if op == OpCAS && want != have.version {
				if res.Code != abi.CodeConflict {
					t.Fatalf("CAS %d on version %d: %v", want, have.version, res.Err())
				}
				counts["conflict"]++
				continue
			}
			v, err := ParseSetResult(checkOK(t, res))
			if err != nil || v != index {
				t.Fatalf("%v: version %d, %v; want %d", op, v, err, index)
			}
			model[key] = entry{value, index}
			counts[op.String()]++
		case 2: // DELETE
			data := AppendDelete(nil, key, 0, false)
			if r.IntN(2) == 0 {
				data = AppendDelete(nil, key, have.version, true)
			}
			deleted, err := ParseDeleteResult(checkOK(t, apply(data)))
			if err != nil || deleted != exists {
				t.Fatalf("DELETE: %v, %v; want %v", deleted, err, exists)
			}
			delete(model, key)
			counts["DELETE"]++
		case 3: // GET
			res := st.Query(sdkKV{}, AppendGet(nil, key))
			if !exists {
				if res.Code != abi.CodeNotFound {
					t.Fatalf("GET of an absent key: %v", res.Err())
				}
				continue
			}
			value, version, err := ParseGetResult(checkOK(t, res))
			if err != nil || !bytes.Equal(value, have.value) || version != have.version {
				t.Fatalf("GET: %d bytes version %d, %v; want %d bytes version %d", len(value), version, err, len(have.value), have.version)
			}
			counts["GET"]++
		case 4: // LIST, a page at a time
			limit := 1 + r.IntN(len(keys))
			var got []Item
			q := Query{Op: OpList, Limit: limit}
			for {
				lr, err := ParseListResult(checkOK(t, st.Query(sdkKV{}, q.AppendMsgpack(nil))))
				if err != nil || len(lr.Items) > limit {
					t.Fatalf("LIST: %d items, %v", len(lr.Items), err)
				}
				got = append(got, lr.Items...)
				if lr.Next == nil {
					break
				}
				q.Start = lr.Next
			}
			if len(got) != len(model) {
				t.Fatalf("LIST: %d items, want %d", len(got), len(model))
			}
			for j, it := range got {
				want, ok := model[string(it.Key)]
				if !ok || !bytes.Equal(it.Value, want.value) || it.Version != want.version || j > 0 && bytes.Compare(got[j-1].Key, it.Key) >= 0 {
					t.Fatalf("LIST item %d: %.10q version %d", j, it.Key, it.Version)
				}
			}
			counts["LIST"]++
		}
	}
	for _, op := range []string{"SET", "CAS", "conflict", "DELETE", "GET", "LIST"} {
		if counts[op] < 50 {
			t.Errorf("only %d %s: the test does not exercise it (%v)", counts[op], op, counts)
		}
	}
}

func checkOK(t *testing.T, res abi.Result) []byte {
	t.Helper()
	if res.Code != abi.CodeOK {
		t.Fatal(res.Err())
	}
	return res.Data
}

// The decoders read the result types as a generic MsgPack encoder writes
// them too (field order and integer widths are not fixed by the decoders).
func TestResultDecodersGeneric(t *testing.T) {
	b, _ := msgpack.Marshal(GetResult{Value: []byte("v"), Version: 9})
	if v, ver, err := ParseGetResult(b); err != nil || string(v) != "v" || ver != 9 {
		t.Fatalf("ParseGetResult: %q %d %v", v, ver, err)
	}
	b, _ = msgpack.Marshal(struct {
		Version uint64 `msgpack:"version"`
		Value   string `msgpack:"value"`
	}{9, "v"})
	if v, ver, err := ParseGetResult(b); err != nil || string(v) != "v" || ver != 9 {
		t.Fatalf("ParseGetResult of str value first: %q %d %v", v, ver, err)
	}
	b, _ = msgpack.Marshal(SetResult{Version: 1 << 33})
	if v, err := ParseSetResult(b); err != nil || v != 1<<33 {
		t.Fatalf("ParseSetResult: %d %v", v, err)
	}
	b, _ = msgpack.Marshal(DeleteResult{Deleted: true})
	if d, err := ParseDeleteResult(b); err != nil || !d {
		t.Fatalf("ParseDeleteResult: %v %v", d, err)
	}
	want := ListResult{Items: []Item{{Key: []byte("a"), Value: []byte{}, Version: 1}, {Key: []byte("b"), Value: []byte("2"), Version: 1 << 40}}, Next: []byte("c")}
	b, _ = msgpack.Marshal(want)
	if lr, err := ParseListResult(b); err != nil || fmt.Sprint(lr) != fmt.Sprint(want) {
		t.Fatalf("ParseListResult: %+v %v", lr, err)
	}
}

func TestResultDecodersRefuse(t *testing.T) {
	get := appendGetResult(nil, []byte("v"), 9)
	for _, bad := range [][]byte{nil, {0x90}, {0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0xc0}, {0x81, 0x01, 0x02},
		{0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01}, // no value
		append(get, 0), get[:len(get)-1]} {
		if _, _, err := ParseGetResult(bad); err == nil {
			t.Errorf("ParseGetResult(% x) accepted", bad)
		}
	}
	set := appendSetResult(nil, 300)
	for _, bad := range [][]byte{nil, {0x90}, append(set, 0), set[:len(set)-1], {0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0xff}} {
		if _, err := ParseSetResult(bad); err == nil {
			t.Errorf("ParseSetResult(% x) accepted", bad)
		}
	}
	del := appendDeleteResult(nil, true)
	for _, bad := range [][]byte{nil, {0x90}, append(del, 0), del[:len(del)-1], {0x81, 0xa7, 'd', 'e', 'l', 'e', 't', 'e', 'd', 0x01}} {
		if _, err := ParseDeleteResult(bad); err == nil {
			t.Errorf("ParseDeleteResult(% x) accepted", bad)
		}
	}
	item := appendItem(nil, []byte("k"), []byte("v"), 1)
	list := append([]byte{0x81, 0xa5, 'i', 't', 'e', 'm', 's', 0x91}, item...)
	if _, err := ParseListResult(list); err != nil {
		t.Fatal(err)
	}
	noValue, _ := msgpack.Marshal(map[string]any{"items": []any{map[string]any{"key": "k"}}})
	for _, bad := range [][]byte{nil, {0x90}, append(list, 0), list[:len(list)-1], noValue,
		{0x81, 0xa5, 'i', 't', 'e', 'm', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}} { // 2³² items announced
		if _, err := ParseListResult(bad); err == nil {
			t.Errorf("ParseListResult(% x) accepted", bad)
		}
	}
}

// A result that announces more items than it has bytes must not make
// ParseListResult allocate for them (a plugin under the name "kv" may be any
// plugin).
func TestListResultAnnouncedItems(t *testing.T) {
	data := []byte{0x81, 0xa5, 'i', 't', 'e', 'm', 's', 0xdd, 0x00, 0x10, 0x00, 0x00} // 2²⁰ items, none there
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ParseListResult(data)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("accepted")
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("ParseListResult allocated %d bytes for items that are not there", n)
	}
}

// FuzzResultDecoders: the decoders never panic, and what they accept the
// plugin's encoders write back to something they decode the same way.
func FuzzResultDecoders(f *testing.F) {
	f.Add(appendGetResult(nil, []byte("v"), 9))
	f.Add(appendSetResult(nil, 1<<40))
	f.Add(appendDeleteResult(nil, true))
	f.Add(append([]byte{0x82, 0xa5, 'i', 't', 'e', 'm', 's', 0x91}, append(appendItem(nil, []byte("k"), []byte("v"), 1), 0xa4, 'n', 'e', 'x', 't', 0xa1, 'l')...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, ver, err := ParseGetResult(data); err == nil {
			v2, ver2, err := ParseGetResult(appendGetResult(nil, v, ver))
			if err != nil || !bytes.Equal(v, v2) || ver != ver2 {
				t.Fatalf("GET result % x: re-encoded, %q %d %v", data, v2, ver2, err)
			}
		}
		if ver, err := ParseSetResult(data); err == nil {
			if ver2, err := ParseSetResult(appendSetResult(nil, ver)); err != nil || ver != ver2 {
				t.Fatalf("SET result % x: re-encoded, %d %v", data, ver2, err)
			}
		}
		if d, err := ParseDeleteResult(data); err == nil {
			if d2, err := ParseDeleteResult(appendDeleteResult(nil, d)); err != nil || d != d2 {
				t.Fatalf("DELETE result % x: re-encoded, %v %v", data, d2, err)
			}
		}
		if lr, err := ParseListResult(data); err == nil {
			var enc []byte
			if lr.Next != nil {
				enc = append(enc, 0x82)
			} else {
				enc = append(enc, 0x81)
			}
			enc = append(enc, 0xa5, 'i', 't', 'e', 'm', 's', 0xdd, 0, 0, 0, 0)
			enc[len(enc)-4], enc[len(enc)-3], enc[len(enc)-2], enc[len(enc)-1] = byte(len(lr.Items)>>24), byte(len(lr.Items)>>16), byte(len(lr.Items)>>8), byte(len(lr.Items))
			for _, it := range lr.Items {
				enc = appendItem(enc, it.Key, it.Value, it.Version)
			}
			if lr.Next != nil {
				enc = append(append(enc, 0xa4, 'n', 'e', 'x', 't'), 0xc4, byte(len(lr.Next)))
				enc = append(enc, lr.Next...)
			}
			if len(lr.Next) < 256 {
				lr2, err := ParseListResult(enc)
				if err != nil || fmt.Sprint(lr) != fmt.Sprint(lr2) {
					t.Fatalf("LIST result % x: re-encoded, %+v %v", data, lr2, err)
				}
			}
		}
	})
}

// Benchmarks of the client codec (the HTTP layer's share of a PUT and a GET):
//
//	go test -run '^$' -bench 'Codec' -benchmem ./plugins/kv/kvstore/
func BenchmarkCodecSet(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	res := appendSetResult(nil, 1<<30)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = append(AppendSetHead(buf[:0], OpSet, "some/key", len(value)), value...)
		if _, err := ParseSetResult(res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecGet(b *testing.B) {
	res := appendGetResult(nil, bytes.Repeat([]byte("v"), 100), 1<<30)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendGet(buf[:0], "some/key")
		if _, _, err := ParseGetResult(res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecDelete(b *testing.B) {
	res := appendDeleteResult(nil, true)
	buf := make([]byte, 0, 256)
	key := strings.Repeat("k", 100)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDelete(buf[:0], key, 7, true)
		if _, err := ParseDeleteResult(res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecList(b *testing.B) {
	st := sdk.NewMemState()
	for i := range 100 {
		st.Set(fmt.Appendf(nil, "key%03d", i), bytes.Repeat([]byte("v"), 100))
	}
	res := st.Query(sdkKV{}, Query{Op: OpList}.AppendMsgpack(nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseListResult(res.Data); err != nil {
			b.Fatal(err)
		}
	}
}

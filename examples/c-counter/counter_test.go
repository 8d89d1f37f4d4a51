//go:build !wasip1

// Tests of the C counter plugin: counter.c is compiled with build.sh (clang,
// wasm-ld) and run by the real runtime (host/plugin) against the real host
// store (host/state), then deployed on an in-process 3-node cluster.
package counter_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/wasmbuild"
	"github.com/raftkv/raftkv/internal/wasmtest"
)

// buildCounter compiles counter.c with build.sh, once per test binary.
func buildCounter(t testing.TB) []byte {
	t.Helper()
	return wasmbuild.BuildScript(t, wasmbuild.Clang, "clang and lld (wasm-ld), for the C example")
}

// limits are the default limits with newTarget's memory cap.
func limits() plugin.Limits {
	l := plugin.DefaultLimits()
	l.MemoryPages = 256
	return l
}

// newTarget is an instance of counter.wasm applying to a real host store.
func newTarget(t testing.TB) *wasmtest.Target {
	t.Helper()
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = 256
	return wasmtest.New(t, buildCounter(t), "counter", cfg, limits())
}

var enc, decode = wasmtest.Enc, wasmtest.Decode

type m = map[string]any

func entry(t testing.TB, index uint64, cmd any) abi.Entry {
	return abi.Entry{Index: index, Term: 3, Time: 1_700_000_000_000_000_000 + int64(index), Data: enc(t, cmd)}
}

// counter is the answer of incr and get.
type counter struct {
	Name    string `msgpack:"name"`
	Value   int64  `msgpack:"value"`
	Version uint64 `msgpack:"version"`
}

func TestInfo(t *testing.T) {
	g := newTarget(t)
	want := abi.Info{Name: "counter", Version: "1.0.0", Description: "named 64-bit counters, in freestanding C against ABI v1"}
	if g.Mod.Info != want || g.Mod.ABIVersion != 1 || g.Mod.HasMigrate {
		t.Fatalf("module: info %+v, ABI v%d, migrate %v", g.Mod.Info, g.Mod.ABIVersion, g.Mod.HasMigrate)
	}
	info, err := g.In.Info(context.Background())
	if err != nil || info != want {
		t.Fatalf("Info: %+v, %v", info, err)
	}
}

// TestCommands: one batch mixing successes, every error and a trap. Each
// entry gets its own result; failed and trapping entries change nothing and
// the entries after a trap still apply (on a fresh instance).
func TestCommands(t *testing.T) {
	g := newTarget(t)
	long := strings.Repeat("n", 256)
	cmds := []struct {
		cmd  any
		code abi.Code
		msg  string // the error message, or the decoded counter for a success
	}{
		{m{"op": "incr", "name": "a"}, abi.CodeOK, `{a 1 1}`},
		{m{"op": "incr", "name": "a", "by": 41}, abi.CodeOK, `{a 42 2}`},
		{m{"op": "incr", "name": []byte("b"), "by": -300}, abi.CodeOK, `{b -300 3}`},
		{m{"op": "incr", "name": "a", "by": 1, "expect": 41}, abi.CodeConflict, "counter a is 42, expected 41"},
		{m{"op": "incr", "name": "a", "by": 8, "expect": 42}, abi.CodeOK, `{a 50 5}`},
		{m{"op": "trap", "name": "a"}, abi.CodeTrap, ""},
		{m{"op": "incr", "name": "a"}, abi.CodeOK, `{a 51 7}`}, // the trap's write was undone
		{[]byte{0xc1}, abi.CodeBadRequest, "malformed command: invalid msgpack"},
		{[]byte{0x81, 0xa2, 'o', 'p'}, abi.CodeBadRequest, "malformed command: invalid msgpack"},
		{[]byte{0x92, 0x01, 0x02}, abi.CodeBadRequest, "malformed command: expected a map"},
		{[]byte{}, abi.CodeBadRequest, "malformed command: invalid msgpack"},
		{map[int]string{1: "x"}, abi.CodeBadRequest, "malformed command: field names must be strings"},
		{m{"name": "a"}, abi.CodeBadRequest, "missing op"},
		{m{"op": 1}, abi.CodeBadRequest, "op must be a string"},
		{m{"op": "get", "name": "a"}, abi.CodeBadRequest, `unknown command op "get"`},
		{m{"op": "incr"}, abi.CodeBadRequest, "missing name"},
		{m{"op": "incr", "name": 5}, abi.CodeBadRequest, "name must be a string"},
		{m{"op": "incr", "name": ""}, abi.CodeBadRequest, "name must be 1 to 255 bytes"},
		{m{"op": "incr", "name": long}, abi.CodeBadRequest, "name must be 1 to 255 bytes"},
		{m{"op": "incr", "name": "a", "by": 1.5}, abi.CodeBadRequest, "by must be a signed 64-bit integer"},
		{m{"op": "incr", "name": "a", "by": uint64(math.MaxInt64) + 1}, abi.CodeBadRequest, "by must be a signed 64-bit integer"},
		{m{"op": "incr", "name": "a", "expect": "x"}, abi.CodeBadRequest, "expect must be a signed 64-bit integer"},
		{m{"op": "incr", "name": "big", "by": int64(math.MaxInt64)}, abi.CodeOK, fmt.Sprintf("{big %d 23}", int64(math.MaxInt64))},
		{m{"op": "incr", "name": "big"}, 64, "overflow: counter big is 9223372036854775807, adding 1 leaves the signed 64-bit range"},
		{m{"op": "incr", "name": "b", "by": int64(math.MinInt64)}, 64, "overflow: counter b is -300, adding -9223372036854775808 leaves the signed 64-bit range"},
		{m{"op": "reset", "name": "b"}, abi.CodeOK, "existed=true"},
		{m{"op": "reset", "name": "b"}, abi.CodeOK, "existed=false"},
		{m{"op": "incr", "name": strings.Repeat("z", 255), "by": 2}, abi.CodeOK, fmt.Sprintf("{%s 2 28}", strings.Repeat("z", 255))},
	}
	entries := make([]abi.Entry, len(cmds))
	for i, c := range cmds {
		entries[i] = entry(t, uint64(i+1), c.cmd)
	}
	res := g.Apply(entries...)
	for i, c := range cmds {
		r := res[i]
		if r.Code != c.code {
			t.Errorf("entry %d %v: %v %q, want code %v", i+1, c.cmd, r.Code, r.Data, c.code)
			continue
		}
		switch {
		case c.code == abi.CodeTrap:
			if !strings.Contains(string(r.Data), "unreachable") {
				t.Errorf("entry %d: trap message %q", i+1, r.Data)
			}
		case c.code != abi.CodeOK:
			if string(r.Data) != c.msg {
				t.Errorf("entry %d %v: message %q, want %q", i+1, c.cmd, r.Data, c.msg)
			}
		case strings.HasPrefix(c.msg, "existed="):
			var out struct {
				Name    string `msgpack:"name"`
				Existed bool   `msgpack:"existed"`
			}
			decode(t, r, &out)
			if got := fmt.Sprintf("existed=%v", out.Existed); got != c.msg || out.Name != "b" {
				t.Errorf("entry %d: %+v, want %s", i+1, out, c.msg)
			}
		default:
			var out counter
			decode(t, r, &out)
			if got := fmt.Sprint(out); got != c.msg {
				t.Errorf("entry %d %v: %s, want %s", i+1, c.cmd, got, c.msg)
			}
		}
	}

	// Queries.
	var a counter
	decode(t, g.Query(m{"op": "get", "name": "a"}), &a)
	if a != (counter{"a", 51, 7}) {
		t.Fatalf("get a: %+v", a)
	}
	for _, c := range []struct {
		q    any
		code abi.Code
		msg  string
	}{
		{m{"op": "get", "name": "b"}, abi.CodeNotFound, "counter b not found"},
		{m{"op": "get"}, abi.CodeBadRequest, "missing name"},
		{m{"op": "incr", "name": "a"}, abi.CodeBadRequest, `unknown query op "incr"`},
		{m{"op": "list", "prefix": 7}, abi.CodeBadRequest, "prefix must be a string of at most 255 bytes"},
		{[]byte("get a"), abi.CodeBadRequest, "malformed query: invalid msgpack"},
	} {
		if r := g.Query(c.q); r.Code != c.code || string(r.Data) != c.msg {
			t.Errorf("query %v: %v %q, want %v %q", c.q, r.Code, r.Data, c.code, c.msg)
		}
	}
	var l struct {
		Counters map[string]int64 `msgpack:"counters"`
	}
	decode(t, g.Query(m{"op": "list"}), &l)
	want := map[string]int64{"a": 51, "big": math.MaxInt64, strings.Repeat("z", 255): 2}
	if fmt.Sprint(l.Counters) != fmt.Sprint(want) {
		t.Fatalf("list: %v", l.Counters)
	}
}

// TestEncodings: the hand-written MsgPack reader accepts every encoding of
// the types it reads, not only the shortest.
func TestEncodings(t *testing.T) {
	g := newTarget(t)
	str8 := func(s string) []byte { return append([]byte{0xd9, byte(len(s))}, s...) }
	str16 := func(s string) []byte { return append([]byte{0xda, 0, byte(len(s))}, s...) }
	str32 := func(s string) []byte { return append([]byte{0xdb, 0, 0, 0, byte(len(s))}, s...) }
	bin8 := func(s string) []byte { return append([]byte{0xc4, byte(len(s))}, s...) }
	bin32 := func(s string) []byte { return append([]byte{0xc6, 0, 0, 0, byte(len(s))}, s...) }
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	cmds := []struct {
		data []byte
		want int64
	}{
		// map16 header, str8/str16 field names, bin8 name, uint64 "by".
		{cat([]byte{0xde, 0, 3}, str8("op"), str16("incr"), str8("name"), bin8("x"), str32("by"), []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 5}), 5},
		// map32 header, int8 -1 as "by", an unknown field holding nested
		// containers, floats, nil, bool and ext values to skip.
		{cat([]byte{0xdf, 0, 0, 0, 4}, str8("extra"),
			[]byte{0x93, 0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x82, 0xc0, 0xc3, 0xa1, 'k', 0xd6, 1, 1, 2, 3, 4}, // [f32, f64, {nil: true, "k": fixext4}]
			[]byte{0xa2, 'o', 'p'}, []byte{0xa4, 'i', 'n', 'c', 'r'}, []byte{0xa4, 'n', 'a', 'm', 'e'}, bin32("x"),
			[]byte{0xa2, 'b', 'y'}, []byte{0xd0, 0xff}), 4},
		// int16 / int32 / int64 negative and uint16 / uint32 positive.
		{cat([]byte{0x83, 0xa2, 'o', 'p', 0xa4, 'i', 'n', 'c', 'r', 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x', 0xa2, 'b', 'y', 0xd1, 0xff, 0x9c}), 4 - 100},
		{cat([]byte{0x83, 0xa2, 'o', 'p', 0xa4, 'i', 'n', 'c', 'r', 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x', 0xa2, 'b', 'y', 0xd2, 0xff, 0xff, 0xff, 0x9c}), 4 - 200},
		{cat([]byte{0x83, 0xa2, 'o', 'p', 0xa4, 'i', 'n', 'c', 'r', 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x', 0xa2, 'b', 'y', 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x9c}), 4 - 300},
		{cat([]byte{0x83, 0xa2, 'o', 'p', 0xa4, 'i', 'n', 'c', 'r', 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x', 0xa2, 'b', 'y', 0xcd, 0x01, 0x2c}), 4},
		{cat([]byte{0x83, 0xa2, 'o', 'p', 0xa4, 'i', 'n', 'c', 'r', 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x', 0xa2, 'b', 'y', 0xce, 0, 1, 0, 0}), 4 + 65536},
		// A repeated field: the last occurrence counts.
		{cat([]byte{0x84, 0xa2, 'o', 'p', 0xa4, 'i', 'n', 'c', 'r', 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x', 0xa2, 'b', 'y', 0x10, 0xa2, 'b', 'y', 0xff}), 4 + 65535},
	}
	for i, c := range cmds {
		r := g.Apply(entry(t, uint64(i+1), c.data))[0]
		var out counter
		decode(t, r, &out)
		if out.Name != "x" || out.Value != c.want {
			t.Fatalf("command %d (%x): %+v, want x=%d", i, c.data, out, c.want)
		}
	}
}

// model is the expected state: value and version of every counter.
type model map[string]counter

// TestRandom: random batches of incr, reset and trap commands over 3000
// names give the results and the state a Go model predicts; a list (which
// pages through state_scan) returns every counter.
func TestRandom(t *testing.T) {
	g := newTarget(t)
	rng := rand.New(rand.NewPCG(5, 5))
	md := model{}
	var index uint64
	name := func() string {
		if rng.IntN(4) == 0 {
			return fmt.Sprintf("hot-%d", rng.IntN(5))
		}
		return fmt.Sprintf("n%05d", rng.IntN(3000))
	}
	for batch := 0; batch < 80; batch++ {
		type expect struct {
			code abi.Code
			c    counter
		}
		var entries []abi.Entry
		var wants []expect
		for range 1 + rng.IntN(100) {
			index++
			n := name()
			cur, exists := md[n]
			switch k := rng.IntN(20); {
			case k == 0:
				entries = append(entries, entry(t, index, m{"op": "trap", "name": n}))
				wants = append(wants, expect{code: abi.CodeTrap})
			case k <= 2:
				entries = append(entries, entry(t, index, m{"op": "reset", "name": n}))
				wants = append(wants, expect{code: abi.CodeOK, c: counter{Name: n, Value: map[bool]int64{false: 0, true: 1}[exists]}})
				delete(md, n)
			case k <= 4:
				e := cur.Value + int64(rng.IntN(2))
				entries = append(entries, entry(t, index, m{"op": "incr", "name": n, "by": 3, "expect": e}))
				if e != cur.Value {
					wants = append(wants, expect{code: abi.CodeConflict})
					continue
				}
				md[n] = counter{n, cur.Value + 3, index}
				wants = append(wants, expect{abi.CodeOK, md[n]})
			default:
				by := rng.Int64N(2000) - 1000
				entries = append(entries, entry(t, index, m{"op": "incr", "name": n, "by": by}))
				md[n] = counter{n, cur.Value + by, index}
				wants = append(wants, expect{abi.CodeOK, md[n]})
			}
		}
		res := g.Apply(entries...)
		for i, w := range wants {
			r := res[i]
			if r.Code != w.code {
				t.Fatalf("entry %d: %v %q, want %v", entries[i].Index, r.Code, r.Data, w.code)
			}
			if w.code != abi.CodeOK {
				continue
			}
			if w.c.Version == 0 { // a reset
				var out struct {
					Existed bool `msgpack:"existed"`
				}
				decode(t, r, &out)
				if out.Existed != (w.c.Value == 1) {
					t.Fatalf("entry %d: reset existed=%v", entries[i].Index, out.Existed)
				}
				continue
			}
			var out counter
			decode(t, r, &out)
			if out != w.c {
				t.Fatalf("entry %d: %+v, want %+v", entries[i].Index, out, w.c)
			}
		}
	}
	// Every counter, by get and by list.
	for n, want := range md {
		var got counter
		decode(t, g.Query(m{"op": "get", "name": n}), &got)
		if got != want {
			t.Fatalf("get %s: %+v, want %+v", n, got, want)
		}
	}
	var l struct {
		Counters map[string]int64 `msgpack:"counters"`
	}
	decode(t, g.Query(m{"op": "list"}), &l)
	if len(l.Counters) != len(md) || len(md) <= 1000 { // more than one state_scan page
		t.Fatalf("list: %d counters, model %d", len(l.Counters), len(md))
	}
	for n, c := range md {
		if l.Counters[n] != c.Value {
			t.Fatalf("list: %s=%d, model %d", n, l.Counters[n], c.Value)
		}
	}
	l.Counters = nil
	decode(t, g.Query(m{"op": "list", "prefix": "hot-"}), &l)
	var hot []string
	for n := range l.Counters {
		hot = append(hot, n)
	}
	sort.Strings(hot)
	if len(hot) == 0 || len(hot) > 5 || !strings.HasPrefix(hot[0], "hot-") {
		t.Fatalf("list hot-: %v", hot)
	}
	// The store holds exactly the model.
	keys := 0
	g.NS.Scan(nil, nil, 0, func(k, v []byte, ver uint64) bool {
		keys++
		c, ok := md[strings.TrimPrefix(string(k), "c/")]
		if !ok || !strings.HasPrefix(string(k), "c/") || len(v) != 8 || ver != c.Version {
			t.Fatalf("stored %q=%x@%d, model %+v", k, v, ver, c)
		}
		return true
	})
	if keys != len(md) {
		t.Fatalf("%d keys stored, model %d", keys, len(md))
	}
	t.Logf("%d entries, %d counters, %d guest pages", index, len(md), g.In.MemoryPages())
}

// TestListPrefix: a prefix ending in 0xff bytes still bounds the scan
// correctly (its end key drops them and increments the byte before).
func TestListPrefix(t *testing.T) {
	g := newTarget(t)
	names := []string{"a", "a\xff", "a\xff\xff", "a\xff0", "b", "\xff"}
	for i, n := range names {
		if r := g.Apply(entry(t, uint64(i+1), m{"op": "incr", "name": []byte(n)}))[0]; !r.OK() {
			t.Fatal(r.Err())
		}
	}
	for prefix, want := range map[string]string{
		"":      `["a" "a\xff" "a\xff0" "a\xff\xff" "b" "\xff"]`,
		"a\xff": `["a\xff" "a\xff0" "a\xff\xff"]`,
		"a":     `["a" "a\xff" "a\xff0" "a\xff\xff"]`,
		"\xff":  `["\xff"]`,
		"c":     `[]`,
	} {
		var l struct {
			Counters map[string]int64 `msgpack:"counters"`
		}
		decode(t, g.Query(m{"op": "list", "prefix": []byte(prefix)}), &l)
		got := []string{}
		for n := range l.Counters {
			got = append(got, n)
		}
		sort.Strings(got)
		if fmt.Sprintf("%q", got) != want {
			t.Errorf("list prefix %q: %q, want %s", prefix, got, want)
		}
	}
}

// TestGarbage: truncated, bit-flipped and random inputs are answered with a
// result (never a trap), as commands and as queries.
func TestGarbage(t *testing.T) {
	g := newTarget(t)
	rng := rand.New(rand.NewPCG(11, 11))
	seeds := [][]byte{
		enc(t, m{"op": "incr", "name": "g", "by": -7, "expect": 3}),
		enc(t, m{"op": "reset", "name": "g"}),
		enc(t, m{"op": "list", "prefix": "g"}),
		enc(t, m{"op": "get", "name": []byte("g")}),
		{0xdf, 0xff, 0xff, 0xff, 0xff}, {0xdd, 0xff, 0xff, 0xff, 0xff}, {0xdb, 0xff, 0xff, 0xff, 0xff},
	}
	var entries []abi.Entry
	var queries [][]byte
	for i := 0; i < 3000; i++ {
		b := bytes.Clone(seeds[rng.IntN(len(seeds))])
		switch rng.IntN(3) {
		case 0:
			b = b[:rng.IntN(len(b)+1)]
		case 1:
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
			}
		default:
			b = make([]byte, rng.IntN(40))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		}
		entries = append(entries, abi.Entry{Index: uint64(i + 1), Term: 1, Data: b})
		queries = append(queries, b)
	}
	codes := map[abi.Code]int{}
	for i, r := range g.Apply(entries...) {
		codes[r.Code]++
		if r.Code == abi.CodeTrap || r.Code == abi.CodeNoResult {
			t.Fatalf("command %x: %v %q", entries[i].Data, r.Code, r.Data)
		}
	}
	for _, q := range queries {
		r := g.Query(q)
		codes[r.Code]++
		if r.Code == abi.CodeTrap || r.Code == abi.CodeNoResult {
			t.Fatalf("query %x: %v %q", q, r.Code, r.Data)
		}
	}
	t.Logf("results by code: %v", codes)
}

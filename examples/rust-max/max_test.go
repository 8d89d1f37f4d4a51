//go:build !wasip1

// Tests of the Rust example plugin: src/lib.rs is built with build.sh (the
// Rust SDK's build script, Debian's cargo and rustc for
// wasm32-unknown-unknown) and run by the real runtime (host/plugin) against
// the real host store (host/state), then deployed on a 3-node cluster and
// used over the HTTP API (cluster_test.go).
package max_test

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

// buildMax builds the plugin with build.sh, once per test binary.
func buildMax(t testing.TB) []byte {
	t.Helper()
	return wasmbuild.BuildScript(t, wasmbuild.Cargo, "Debian's rustc, cargo, libstd-rust-dev-wasm32 and lld-14, for the Rust example")
}

// newTarget is an instance of max.wasm applying to a real host store.
func newTarget(t testing.TB) *wasmtest.Target {
	t.Helper()
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = 256
	lim := plugin.DefaultLimits()
	lim.MemoryPages = cfg.MemoryLimitPages
	return wasmtest.New(t, buildMax(t), "max", cfg, lim)
}

var enc, decode = wasmtest.Enc, wasmtest.Decode

type m = map[string]any

const baseTime = 1_700_000_000_000_000_000

func entry(t testing.TB, index uint64, cmd any) abi.Entry {
	return abi.Entry{Index: index, Term: 3, Time: baseTime + int64(index), Data: enc(t, cmd)}
}

// mark is the answer of offer and get.
type mark struct {
	Key     string `msgpack:"key"`
	Max     int64  `msgpack:"max"`
	At      int64  `msgpack:"at"`
	Version uint64 `msgpack:"version"`
	Raised  bool   `msgpack:"raised"`
}

type listing struct {
	Marks map[string]int64 `msgpack:"marks"`
	Next  *string          `msgpack:"next"`
}

// TestInfo: the module passes the host's validation (exports, imports: only
// raftkv host functions, no WASI), reports its info, has no migration.
func TestInfo(t *testing.T) {
	g := newTarget(t)
	want := abi.Info{Name: "max", Version: "1.0.0", Description: "named high-water marks (key -> max register), in Rust with the raftkv SDK"}
	if g.Mod.Info != want || g.Mod.ABIVersion != 1 || g.Mod.HasMigrate {
		t.Fatalf("module: info %+v, ABI v%d, migrate %v", g.Mod.Info, g.Mod.ABIVersion, g.Mod.HasMigrate)
	}
	if !g.Mod.HasValidate {
		t.Fatal("the Router's raftkv_validate is not used: HasValidate false")
	}
	// raftkv_info itself also says "validate": true (the Rust SDK's Router).
	info, err := g.In.Info(context.Background())
	if err != nil || info.Validate == nil || !*info.Validate {
		t.Fatalf("Info: %+v, %v", info, err)
	}
	info.Validate = nil
	if info != want {
		t.Fatalf("Info: %+v", info)
	}
}

// TestCommands: one batch of successes and every kind of error; failed
// entries change nothing, each entry gets its own result.
func TestCommands(t *testing.T) {
	g := newTarget(t)
	cmds := []struct {
		cmd  any
		code abi.Code
		want string // the error message, or the decoded mark
	}{
		{m{"op": "offer", "key": "seq", "value": 10}, abi.CodeOK, "{seq 10 1 1 true}"},
		{m{"op": "offer", "key": "seq", "value": 7}, abi.CodeOK, "{seq 10 1 1 false}"},
		{m{"op": "offer", "key": []byte("seq"), "value": 12}, abi.CodeOK, "{seq 12 3 3 true}"},
		{m{"op": "offer", "key": "neg", "value": int64(math.MinInt64)}, abi.CodeOK, fmt.Sprintf("{neg %d 4 4 true}", int64(math.MinInt64))},
		{m{"op": "offer", "key": "big", "value": uint64(math.MaxInt64)}, abi.CodeOK, fmt.Sprintf("{big %d 5 5 true}", int64(math.MaxInt64))},
		{m{"op": "offer", "key": "seq", "value": uint64(math.MaxInt64) + 1}, abi.CodeBadRequest, "value must be a signed 64-bit integer"},
		{m{"op": "offer", "key": "seq", "value": 1.5}, abi.CodeBadRequest, "value must be a signed 64-bit integer"},
		{m{"op": "offer", "key": "seq", "value": "13"}, abi.CodeBadRequest, "value must be a signed 64-bit integer"},
		{m{"op": "offer", "key": "seq"}, abi.CodeBadRequest, "missing value"},
		{m{"op": "offer", "key": "seq", "value": nil}, abi.CodeBadRequest, "missing value"},
		{m{"op": "offer", "value": 1}, abi.CodeBadRequest, "missing key"},
		{m{"op": "offer", "key": 5, "value": 1}, abi.CodeBadRequest, "key must be a string"},
		{m{"op": "offer", "key": "", "value": 1}, abi.CodeBadRequest, "key must be 1 to 255 bytes"},
		{m{"op": "offer", "key": strings.Repeat("k", 256), "value": 1}, abi.CodeBadRequest, "key must be 1 to 255 bytes"},
		{m{"op": "offer", "key": "seq", "value": 1, "by": 1}, abi.CodeBadRequest, `unknown field "by"`},
		{m{"op": "get", "key": "seq"}, abi.CodeBadRequest, `unknown command op "get"`},
		{m{"op": 7}, abi.CodeBadRequest, "op must be a string"},
		{m{"key": "seq"}, abi.CodeBadRequest, "missing op"},
		{map[int]string{1: "x"}, abi.CodeBadRequest, "malformed command: field names must be strings"},
		{[]any{"offer", "seq", 1}, abi.CodeBadRequest, "malformed command: expected a map, got array"},
		{[]byte{}, abi.CodeBadRequest, "malformed command: invalid msgpack: truncated at byte 0"},
		{[]byte{0xc1}, abi.CodeBadRequest, "malformed command: invalid msgpack: reserved byte 0xc1 at byte 0"},
		{[]byte("offer seq 1"), abi.CodeBadRequest, "malformed command: invalid msgpack: 10 bytes after the value"},
		{[]byte{0x81, 0xa2, 'o', 'p'}, abi.CodeBadRequest, "malformed command: invalid msgpack: truncated at byte 4"},
		{[]byte{0x81, 0xa2, 'o', 'p', 0xa2, 0xff, 0xfe}, abi.CodeBadRequest, "malformed command: invalid msgpack: str at byte 4 is not UTF-8"},
		{m{"op": "reset", "key": "neg"}, abi.CodeOK, "existed=true"},
		{m{"op": "reset", "key": "neg"}, abi.CodeOK, "existed=false"},
		{m{"op": "offer", "key": "seq", "value": 12}, abi.CodeOK, "{seq 12 3 3 false}"},
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
		case c.code != abi.CodeOK:
			if string(r.Data) != c.want {
				t.Errorf("entry %d %v: message %q, want %q", i+1, c.cmd, r.Data, c.want)
			}
		case strings.HasPrefix(c.want, "existed="):
			var out struct {
				Key     string `msgpack:"key"`
				Existed bool   `msgpack:"existed"`
			}
			decode(t, r, &out)
			if got := fmt.Sprintf("existed=%v", out.Existed); got != c.want || out.Key != "neg" {
				t.Errorf("entry %d: %+v, want %s", i+1, out, c.want)
			}
		default:
			var out mark
			decode(t, r, &out)
			// "at" is the entry time of the raise: print it as its index.
			got := fmt.Sprintf("{%s %d %d %d %v}", out.Key, out.Max, out.At-baseTime, out.Version, out.Raised)
			if got != c.want {
				t.Errorf("entry %d %v: %s, want %s", i+1, c.cmd, got, c.want)
			}
		}
	}

	// Queries.
	var got mark
	decode(t, g.Query(m{"op": "get", "key": "seq"}), &got)
	if got != (mark{Key: "seq", Max: 12, At: baseTime + 3, Version: 3}) {
		t.Fatalf("get seq: %+v", got)
	}
	for _, c := range []struct {
		q    any
		code abi.Code
		msg  string
	}{
		{m{"op": "get", "key": "neg"}, abi.CodeNotFound, `no mark "neg"`},
		{m{"op": "get"}, abi.CodeBadRequest, "missing key"},
		{m{"op": "offer", "key": "seq", "value": 99}, abi.CodeBadRequest, `unknown query op "offer"`},
		{m{"op": "list", "limit": 0}, abi.CodeBadRequest, "limit must be 1 to 1000"},
		{m{"op": "list", "limit": 1001}, abi.CodeBadRequest, "limit must be 1 to 1000"},
		{m{"op": "list", "limit": -1}, abi.CodeBadRequest, "limit must be an unsigned 64-bit integer"},
		{m{"op": "list", "prefix": 7}, abi.CodeBadRequest, "prefix must be a string"},
		{m{"op": "list", "prefix": strings.Repeat("p", 256)}, abi.CodeBadRequest, "prefix must be at most 255 bytes"},
		{[]byte("get seq"), abi.CodeBadRequest, "malformed query: invalid msgpack: 6 bytes after the value"},
		{[]byte{}, abi.CodeBadRequest, "malformed query: invalid msgpack: truncated at byte 0"},
	} {
		if r := g.Query(c.q); r.Code != c.code || string(r.Data) != c.msg {
			t.Errorf("query %v: %v %q, want %v %q", c.q, r.Code, r.Data, c.code, c.msg)
		}
	}
	var l listing
	decode(t, g.Query(m{"op": "list"}), &l)
	if fmt.Sprint(l.Marks) != fmt.Sprint(map[string]int64{"big": math.MaxInt64, "seq": 12}) || l.Next != nil {
		t.Fatalf("list: %v next %v", l.Marks, l.Next)
	}
	// The store holds exactly the two marks, at the versions of their raises.
	var keys []string
	g.NS.Scan(nil, nil, 0, func(k, v []byte, ver uint64) bool {
		keys = append(keys, fmt.Sprintf("%s@%d", k, ver))
		return true
	})
	if fmt.Sprint(keys) != "[m/big@5 m/seq@3]" {
		t.Fatalf("stored: %v", keys)
	}
}

// TestRandom: random batches of offers and resets over 3000 names give the
// results and the state a Go model predicts; list pages through every mark
// (several state_scan pages of the SDK's range, several list pages).
func TestRandom(t *testing.T) {
	g := newTarget(t)
	rng := rand.New(rand.NewPCG(7, 7))
	model := map[string]mark{}
	var index uint64
	name := func() string {
		if rng.IntN(4) == 0 {
			return fmt.Sprintf("hot-%d", rng.IntN(5))
		}
		return fmt.Sprintf("n%05d", rng.IntN(3000))
	}
	for range 60 {
		var entries []abi.Entry
		var wants []any
		for range 1 + rng.IntN(100) {
			index++
			n := name()
			cur, exists := model[n]
			if rng.IntN(15) == 0 {
				entries = append(entries, entry(t, index, m{"op": "reset", "key": n}))
				wants = append(wants, exists)
				delete(model, n)
				continue
			}
			v := rng.Int64N(2000) - 1000
			entries = append(entries, entry(t, index, m{"op": "offer", "key": n, "value": v}))
			if !exists || v > cur.Max {
				cur = mark{Key: n, Max: v, At: baseTime + int64(index), Version: index}
				model[n] = cur
				cur.Raised = true
			}
			wants = append(wants, cur)
		}
		for i, r := range g.Apply(entries...) {
			switch w := wants[i].(type) {
			case bool:
				var out struct {
					Existed bool `msgpack:"existed"`
				}
				decode(t, r, &out)
				if out.Existed != w {
					t.Fatalf("entry %d: reset existed=%v, want %v", entries[i].Index, out.Existed, w)
				}
			case mark:
				var out mark
				decode(t, r, &out)
				if out != w {
					t.Fatalf("entry %d: %+v, want %+v", entries[i].Index, out, w)
				}
			}
		}
	}
	for n, want := range model {
		var got mark
		decode(t, g.Query(m{"op": "get", "key": n}), &got)
		want.Raised = false
		if got != want {
			t.Fatalf("get %s: %+v, want %+v", n, got, want)
		}
	}
	// Every mark through list, 1000 at a time.
	all := map[string]int64{}
	var after any
	pages := 0
	for {
		var l listing
		decode(t, g.Query(m{"op": "list", "after": after, "limit": 1000}), &l)
		pages++
		for k, v := range l.Marks {
			all[k] = v
		}
		if l.Next == nil {
			break
		}
		after = *l.Next
	}
	if len(all) != len(model) || len(model) <= 1000 || pages < 2 {
		t.Fatalf("list: %d marks in %d pages, model %d", len(all), pages, len(model))
	}
	for n, w := range model {
		if all[n] != w.Max {
			t.Fatalf("list: %s=%d, model %d", n, all[n], w.Max)
		}
	}
	var l listing
	decode(t, g.Query(m{"op": "list", "prefix": "hot-"}), &l)
	var hot []string
	for n := range l.Marks {
		hot = append(hot, n)
	}
	sort.Strings(hot)
	if len(hot) == 0 || len(hot) > 5 || !strings.HasPrefix(hot[0], "hot-") {
		t.Fatalf("list hot-: %v", hot)
	}
	t.Logf("%d entries, %d marks, %d list pages, %d guest pages", index, len(model), pages, g.In.MemoryPages())
}

// TestLargeInputs: commands up to the 2 MiB limit, alone and in a batch
// of many, are answered (the SDK's input buffer grows to the batch).
func TestLargeInputs(t *testing.T) {
	g := newTarget(t)
	pad := strings.Repeat("x", abi.MaxCommandSize-100)
	res := g.Apply(entry(t, 1, m{"op": "offer", "key": "k", "value": 1, "pad": pad}))
	if res[0].Code != abi.CodeBadRequest || string(res[0].Data) != `unknown field "pad"` {
		t.Fatalf("large command: %v %q", res[0].Code, res[0].Data)
	}
	var entries []abi.Entry
	for i := range 2000 {
		entries = append(entries, entry(t, uint64(i+2), m{"op": "offer", "key": fmt.Sprintf("k%04d", i), "value": i, "pad": strings.Repeat("y", 900)}))
	}
	for i, r := range g.Apply(entries...) {
		if r.Code != abi.CodeBadRequest {
			t.Fatalf("entry %d: %v %q", i, r.Code, r.Data)
		}
	}
	// Deep nesting is refused, not a stack overflow.
	deep := append(bytes.Repeat([]byte{0x91}, 100000), 0xc0)
	if r := g.Apply(entry(t, 3000, deep))[0]; r.Code != abi.CodeBadRequest || !strings.Contains(string(r.Data), "nested deeper than 128") {
		t.Fatalf("deep command: %v %q", r.Code, r.Data)
	}
	// A map header claiming 4 billion pairs is refused without allocating.
	if r := g.Apply(entry(t, 3001, []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0}))[0]; r.Code != abi.CodeBadRequest {
		t.Fatalf("huge header: %v %q", r.Code, r.Data)
	}
	t.Logf("%d guest pages", g.In.MemoryPages())
}

// TestGarbage: truncated, bit-flipped and random inputs are answered with a
// result (never a trap), as commands and as queries.
func TestGarbage(t *testing.T) {
	g := newTarget(t)
	rng := rand.New(rand.NewPCG(11, 11))
	seeds := [][]byte{
		enc(t, m{"op": "offer", "key": "g", "value": -7}),
		enc(t, m{"op": "reset", "key": "g"}),
		enc(t, m{"op": "list", "prefix": "g", "after": "g", "limit": 3}),
		enc(t, m{"op": "get", "key": []byte("g")}),
		{0xdf, 0xff, 0xff, 0xff, 0xff}, {0xdd, 0xff, 0xff, 0xff, 0xff}, {0xdb, 0xff, 0xff, 0xff, 0xff},
	}
	const n = 3000
	var entries []abi.Entry
	var queries [][]byte
	for i := range n {
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

// BenchmarkOffer: batches of 100 offers (half of them raise a mark) on the
// real runtime; ns/op is per entry.
func BenchmarkOffer(b *testing.B) {
	g := newTarget(b)
	cmds := make([][]byte, 100)
	for i := range cmds {
		cmds[i] = enc(b, m{"op": "offer", "key": fmt.Sprintf("mark-%03d", i%50), "value": i})
	}
	entries := make([]abi.Entry, len(cmds))
	var index uint64
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += len(cmds) {
		for i := range entries {
			index++
			entries[i] = abi.Entry{Index: index, Term: 1, Time: baseTime, Data: cmds[i]}
		}
		for _, r := range g.Apply(entries...) {
			if !r.OK() {
				b.Fatal(r.Err())
			}
		}
	}
}

// BenchmarkGet: get queries on the real runtime.
func BenchmarkGet(b *testing.B) {
	g := newTarget(b)
	g.Apply(entry(b, 1, m{"op": "offer", "key": "mark", "value": 7}))
	q := enc(b, m{"op": "get", "key": "mark"})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if r := g.Query(q); !r.OK() {
			b.Fatal(r.Err())
		}
	}
}

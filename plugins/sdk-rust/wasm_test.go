//go:build !wasip1

// Tests of the Rust SDK's glue on the real runtime: testdata/probe (a
// plugin with one op per piece of glue) is built with build.sh and run by
// host/plugin against the real host store. The SDK's own unit tests run
// natively with cargo test (make test-rust); the example plugin's tests are
// in examples/rust-max.
package sdkrust_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/wasmbuild"
	"github.com/raftkv/raftkv/internal/wasmtest"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// buildProbe builds testdata/probe once per test binary.
func buildProbe(t testing.TB) []byte {
	t.Helper()
	return wasmbuild.BuildScript(t, wasmbuild.Cargo, "Debian's rustc, cargo, libstd-rust-dev-wasm32 and lld-14, for the Rust SDK", "testdata/probe")
}

// logBuffer collects the plugin's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type target struct {
	*wasmtest.Target
	logs *logBuffer
	last uint64 // the last entry's index
}

func newTarget(t testing.TB) *target {
	t.Helper()
	logs := &logBuffer{}
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = 256 // 16 MiB
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	// The probe moves megabytes in one entry (1 MiB values it generates byte
	// by byte, 12 MB fills) to test the SDK's buffers: room beyond the
	// default fuel and write quota (plugin limits are tested in host/plugin).
	lim := plugin.DefaultLimits()
	lim.MemoryPages = cfg.MemoryLimitPages
	lim.ApplyFuel, lim.QueryFuel, lim.MaxWriteBytes = plugin.MaxFuel, plugin.MaxFuel, 64<<20
	return &target{Target: wasmtest.New(t, buildProbe(t), "probe", cfg, lim), logs: logs}
}

type m = map[string]any

// enc encodes v as MsgPack (a []byte too: as a bin).
func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apply applies the commands as entries 1, 2, ... after the last index.
func (g *target) apply(cmds ...any) []abi.Result {
	g.T.Helper()
	var entries []abi.Entry
	for _, c := range cmds {
		e, ok := c.(abi.Entry)
		if !ok {
			e = abi.Entry{Term: 1, Time: 1, Data: enc(g.T, c)}
		}
		if e.Index == 0 {
			e.Index = g.last + 1
		}
		g.last = e.Index
		entries = append(entries, e)
	}
	return g.Apply(entries...)
}

func (g *target) stored(key string) (string, uint64, bool) {
	v, ver, ok := g.NS.Get([]byte(key))
	return string(v), ver, ok
}

var decode = wasmtest.Decode

// TestProbeInfo: export!(P, migrate) exports raftkv_migrate; the module
// passes the host's validation.
func TestProbeInfo(t *testing.T) {
	g := newTarget(t)
	want := abi.Info{Name: "probe", Version: "0.1.0", Description: "the Rust SDK's probe"}
	if g.Mod.Info != want || g.Mod.ABIVersion != 1 || !g.Mod.HasMigrate {
		t.Fatalf("module: info %+v, ABI v%d, migrate %v", g.Mod.Info, g.Mod.ABIVersion, g.Mod.HasMigrate)
	}
}

// TestProbeInputBuffer: the SDK offers a 64 KiB input buffer
// (raftkv_input_buffer, ABI v1.2), and inputs arrive intact whether they
// fit in it or go through raftkv_alloc (a command over 64 KiB), alternately
// on one instance.
func TestProbeInputBuffer(t *testing.T) {
	g := newTarget(t)
	if _, c := g.In.InputBuffer(); c != 64<<10 {
		t.Fatalf("input buffer capacity %d, want 64 KiB", c)
	}
	big := bytes.Repeat([]byte("0123456789"), 10<<10) // 100 KiB
	for i, value := range [][]byte{[]byte("small"), big, []byte("small again"), big[:50<<10]} {
		key := fmt.Sprintf("k%d", i)
		if res := g.apply(m{"op": "put", "key": key, "value": value}); !res[0].OK() {
			t.Fatalf("put %d bytes: %v %q", len(value), res[0].Code, res[0].Data)
		}
		if v, _, _ := g.stored(key); v != string(value) {
			t.Fatalf("stored %d bytes, want the %d put", len(v), len(value))
		}
		r := g.Query(m{"op": "get", "key": key})
		if !r.OK() || !bytes.Contains(r.Data, value) {
			t.Fatalf("get %s: %v (%d bytes)", key, r.Code, len(r.Data))
		}
	}
}

// TestProbeResults: an error result undoes the entry's writes; a panic is a
// trap (code 6) whose writes the host undoes, its message in the node's
// log, and the entries after it apply on a fresh instance; error codes pass
// through, except those a plugin may not report, which become internal.
func TestProbeResults(t *testing.T) {
	g := newTarget(t)
	res := g.apply(
		m{"op": "put", "key": "a", "value": "1"},
		m{"op": "fail_after_write", "key": "a"},
		m{"op": "panic_after_write", "key": "b"},
		m{"op": "put", "key": "c", "value": "3"},
		m{"op": "error", "code": 64, "message": "mine"},
		m{"op": "error", "code": 255, "message": "mine too"},
		m{"op": "error", "code": 0, "message": "not a success"},
		m{"op": "error", "code": 7, "message": "not the host's"},
		m{"op": "error", "code": 256, "message": "too big"},
		m{"op": "log", "message": "hello from rust"},
	)
	want := []struct {
		code abi.Code
		msg  string
	}{
		{abi.CodeOK, "\xc0"},
		{abi.CodeConflict, "refused after writing"},
		{abi.CodeTrap, "unreachable"},
		{abi.CodeOK, "\xc0"},
		{64, "mine"},
		{255, "mine too"},
		{abi.CodeInternal, "error with invalid code 0: not a success"},
		{abi.CodeInternal, "error with invalid code 7: not the host's"},
		{abi.CodeInternal, "error with invalid code 256: too big"},
		{abi.CodeOK, "\xc0"},
	}
	for i, w := range want {
		if res[i].Code != w.code || !strings.Contains(string(res[i].Data), w.msg) {
			t.Errorf("entry %d: %v %q, want %v %q", i+1, res[i].Code, res[i].Data, w.code, w.msg)
		}
	}
	for key, want := range map[string]string{"a": "1", "b": "", "c": "3"} {
		if v, _, _ := g.stored(key); v != want {
			t.Errorf("%s = %q, want %q", key, v, want)
		}
	}
	logs := g.logs.String()
	for _, s := range []string{`panic: panicked at 'probe panics after writing \"b\"'`, "hello from rust", "level=WARN"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
	for _, q := range []struct {
		code abi.Code
		want abi.Code
	}{{64, 64}, {2, abi.CodeNotFound}, {0, abi.CodeInternal}, {8, abi.CodeInternal}} {
		if r := g.Query(m{"op": "error", "code": q.code, "message": "q"}); r.Code != q.want {
			t.Errorf("query error %d: %v %q", q.code, r.Code, r.Data)
		}
	}
}

// TestProbeLimits: values up to 1 MiB round-trip through state_set and
// state_get (larger than the SDK's first buffer), the ABI's limits come
// back as errors, and running out of guest memory is a trap that loses
// nothing.
func TestProbeLimits(t *testing.T) {
	g := newTarget(t)
	long := strings.Repeat("k", abi.MaxKeySize+1)
	res := g.apply(
		m{"op": "put", "key": "big", "size": abi.MaxValueSize},
		m{"op": "put", "key": "small", "size": 3},
		m{"op": "put", "key": "big2", "size": abi.MaxValueSize + 1},
		m{"op": "put", "key": long, "size": 1},
		m{"op": "put", "key": strings.Repeat("k", abi.MaxKeySize), "size": 1},
		m{"op": "put", "key": "", "size": 1},
		m{"op": "grow", "mib": 64},
		m{"op": "put", "key": "after", "value": "ok"},
	)
	codes := fmt.Sprint(res[0].Code, res[1].Code, res[2].Code, res[3].Code, res[4].Code, res[5].Code, res[6].Code, res[7].Code)
	if codes != "ok ok too_large too_large ok bad_request trap ok" {
		t.Fatalf("codes: %s (%q %q %q)", codes, res[2].Data, res[5].Data, res[6].Data)
	}
	var got struct {
		Value   []byte `msgpack:"value"`
		Version uint64 `msgpack:"version"`
	}
	decode(t, g.Query(m{"op": "get", "key": "big"}), &got)
	if len(got.Value) != abi.MaxValueSize || got.Version != 1 {
		t.Fatalf("big: %d bytes at version %d", len(got.Value), got.Version)
	}
	for i, c := range got.Value {
		if c != byte(i%251) {
			t.Fatalf("big: byte %d is %d", i, c)
		}
	}
	decode(t, g.Query(m{"op": "get", "key": "small"}), &got)
	if !bytes.Equal(got.Value, []byte{0, 1, 2}) || got.Version != 2 {
		t.Fatalf("small after big: %x at %d", got.Value, got.Version)
	}
	if r := g.Query(m{"op": "get", "key": long}); r.Code != abi.CodeTooLarge {
		t.Fatalf("get of a long key: %v %q", r.Code, r.Data)
	}
	if r := g.Query(m{"op": "get", "key": "absent"}); r.Code != abi.CodeNotFound {
		t.Fatalf("get of an absent key: %v %q", r.Code, r.Data)
	}
}

// TestProbeRange: the SDK's range pages through state_scan (1000 records a
// page, each page about 1 MiB here, larger than the SDK's first buffer),
// asks for fewer records when a page of large values would exceed
// MAX_SCAN_BYTES, and visits every key of a prefix once, in order.
func TestProbeRange(t *testing.T) {
	g := newTarget(t)
	res := g.apply(
		m{"op": "fill", "prefix": "p/", "n": 2500, "size": 1000},
		m{"op": "fill", "prefix": "q/", "n": 3, "size": 1},
		m{"op": "put", "key": "p", "value": "outside"},
		m{"op": "fill", "prefix": "r/", "n": 40, "size": 300_000},
	)
	for i, r := range res {
		if !r.OK() {
			t.Fatalf("entry %d: %v", i, r.Err())
		}
	}
	var c struct {
		Keys  int    `msgpack:"keys"`
		Bytes int    `msgpack:"bytes"`
		First string `msgpack:"first"`
		Last  string `msgpack:"last"`
	}
	decode(t, g.Query(m{"op": "count", "prefix": "p/"}), &c)
	if c.Keys != 2500 || c.Bytes != 2500*1000 || c.First != "p/000000" || c.Last != "p/002499" {
		t.Fatalf("count p/: %+v", c)
	}
	decode(t, g.Query(m{"op": "count", "prefix": ""}), &c)
	if c.Keys != 2544 || c.First != "p" || c.Last != "r/000039" {
		t.Fatalf("count all: %+v", c)
	}
	decode(t, g.Query(m{"op": "count", "prefix": "r/"}), &c)
	if c.Keys != 40 || c.Bytes != 40*300_000 || c.First != "r/000000" || c.Last != "r/000039" {
		t.Fatalf("count r/: %+v", c)
	}
	if r := g.Query(m{"op": "scan", "start": "r/", "limit": 1000}); r.Code != abi.CodeTooLarge || !strings.HasPrefix(string(r.Data), "scan answer too large: ") {
		t.Fatalf("scan of 1000 large records: %v %q", r.Code, r.Data)
	}
	var n int
	decode(t, g.Query(m{"op": "scan", "start": "r/", "limit": 3}), &n)
	if n != 3 {
		t.Fatalf("scan of 3 large records: %d", n)
	}
	t.Logf("%d guest pages", g.In.MemoryPages())
}

// TestProbeMetadata: an entry's index, term, time and data reach the
// handler as the host sent them, and Entry::seed is the Go SDK's
// Entry.Seed for the same entry (a plugin's randomness is the same in
// either language).
func TestProbeMetadata(t *testing.T) {
	g := newTarget(t)
	entries := []abi.Entry{
		{Index: 5, Term: 2, Time: -1, Data: enc(t, m{"op": "meta"})},
		{Index: 1 << 40, Term: 1<<32 + 3, Time: 1_700_000_000_123_456_789, Data: enc(t, m{"op": "meta", "x": []byte{0, 0xff}})},
	}
	res := g.apply(entries[0], entries[1])
	for i, e := range entries {
		var got struct {
			Index uint64 `msgpack:"index"`
			Term  uint64 `msgpack:"term"`
			Time  int64  `msgpack:"time"`
			Seed  uint64 `msgpack:"seed"`
			Data  []byte `msgpack:"data"`
		}
		decode(t, res[i], &got)
		want := sdk.Entry{Index: e.Index, Term: e.Term, Time: e.Time}
		if got.Index != e.Index || got.Term != e.Term || got.Time != e.Time || got.Seed != want.Seed() || !bytes.Equal(got.Data, e.Data) {
			t.Fatalf("entry %d: %+v, want %+v seed %#x", i, got, e, want.Seed())
		}
	}
}

// TestProbeMigrate: raftkv_migrate decodes the migration, sees the deploy
// entry through the host's entry functions, and its error rejects the
// upgrade with its code and undoes its writes.
func TestProbeMigrate(t *testing.T) {
	g := newTarget(t)
	deploy := abi.Entry{Index: 12, Term: 4, Time: 1_700_000_000_000_000_042}
	var res abi.Result
	var err error
	g.Store.Update(func() {
		res, err = g.In.Migrate(context.Background(), g.NS, abi.Migration{FromHash: "ab12", FromVersion: "refuse", Index: 12}, deploy)
	})
	if err != nil || res.Code != 99 || string(res.Data) != "probe refuses to migrate" {
		t.Fatalf("refused migration: %v %q %v", res.Code, res.Data, err)
	}
	if _, _, ok := g.stored("migrated"); ok {
		t.Fatal("a refused migration's write was kept")
	}
	g.Store.Update(func() {
		res, err = g.In.Migrate(context.Background(), g.NS, abi.Migration{FromHash: "ab12", FromVersion: "1.0.0", Index: 12}, deploy)
	})
	if err != nil || !res.OK() {
		t.Fatalf("migration: %v %v", res.Err(), err)
	}
	v, ver, _ := g.stored("migrated")
	var got []any
	if err := msgpack.Unmarshal([]byte(v), &got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint([]any{"ab12", "1.0.0", 12, 12, 4, deploy.Time}) || ver != 12 {
		t.Fatalf("migrated = %v at %d", got, ver)
	}
}

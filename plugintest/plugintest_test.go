package plugintest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugintest"
)

var (
	buildMu sync.Mutex
	built   = map[string][]byte{}
)

func build(t *testing.T, pkg string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[pkg]; ok {
		return b
	}
	b, err := plugintest.Build("..", pkg)
	if err != nil {
		t.Fatal(err)
	}
	built[pkg] = b
	return b
}

func opts() plugintest.Options {
	return plugintest.Options{CacheDir: filepath.Join(os.TempDir(), "raftkv-test-wasm-cache")}
}

type job struct {
	ID       uint64 `msgpack:"id"`
	Payload  string `msgpack:"payload"`
	Pushed   int64  `msgpack:"pushed"`
	Attempts uint32 `msgpack:"attempts"`
}

func load(t *testing.T, wasm []byte, o plugintest.Options) *plugintest.Plugin {
	t.Helper()
	p, err := plugintest.Load(wasm, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestQueueWasm(t *testing.T) {
	p := load(t, build(t, "./examples/queue"), opts())
	if p.Info().Name != "queue" || p.Info().Version != "1.0.0" || p.HasMigrate() {
		t.Fatalf("info %+v, has_migrate %v (v1 has no sdk.Migrator)", p.Info(), p.HasMigrate())
	}
	for _, s := range []string{"a", "b", "c"} {
		if r := p.Command(map[string]any{"op": "push", "payload": s}); !r.OK() {
			t.Fatal(r.Err())
		}
	}
	j, err := plugintest.Decode[job](p.Command(map[string]any{"op": "pop"}))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	if err != nil || j.ID != 1 || j.Payload != "a" || j.Pushed != start {
		t.Fatalf("pop = %+v, %v", j, err)
	}
	if p.Index() != 4 {
		t.Errorf("index %d after 4 entries", p.Index())
	}
	// A batch, as a node applies one: results per entry, a failed entry
	// leaves nothing behind.
	res, err := p.Apply([]byte(`not msgpack`), []byte{0x81, 0xa2, 'o', 'p', 0xa3, 'p', 'o', 'p'})
	if err != nil || len(res) != 2 || res[0].Code != abi.CodeBadRequest || !res[1].OK() {
		t.Fatalf("batch: %v %v", res, err)
	}
	n, err := plugintest.Decode[map[string]int](p.Query(map[string]any{"op": "len"}))
	if err != nil || n["queued"] != 1 {
		t.Errorf("len = %v, %v", n, err)
	}
	// The paged list (sdk.Map.List) through the guest's codec.
	type page struct {
		Items []job   `msgpack:"items"`
		Next  *uint64 `msgpack:"next"`
	}
	p.Command(map[string]any{"op": "push", "payload": "d"})
	l, err := plugintest.Decode[page](p.Query(map[string]any{"op": "list", "limit": 1}))
	if err != nil || len(l.Items) != 1 || l.Items[0].Payload != "c" || l.Next == nil || *l.Next != 3 {
		t.Errorf("list, limit 1: %+v, %v", l, err)
	}
	l, err = plugintest.Decode[page](p.Query(map[string]any{"op": "list", "after": 3}))
	if err != nil || len(l.Items) != 1 || l.Items[0].Payload != "d" || l.Next != nil {
		t.Errorf("list after 3: %+v, %v", l, err)
	}
	p.Command(map[string]any{"op": "pop"})
	if _, err := plugintest.Decode[job](p.Query(map[string]any{"op": "nope"})); !errors.Is(err, &abi.Error{Code: abi.CodeBadRequest}) {
		t.Errorf("unknown query op: %v", err)
	}
	if r := p.Query(map[string]any{"op": "pop"}); r.Code != abi.CodeBadRequest {
		t.Errorf("a command as a query: %v", r.Err())
	}
	// raftkv_validate: the Router refuses what it could not apply, from the
	// bytes alone, without an entry.
	if !p.HasValidate() {
		t.Error("a Router plugin does not report raftkv_validate")
	}
	before := p.Index()
	for _, bad := range []any{map[string]any{"op": "nope"}, map[string]any{"op": "push", "payload": 5}, []byte{0xc1}, map[string]any{"op": "len"}} {
		if r := p.Validate(bad); r.Code != abi.CodeBadRequest {
			t.Errorf("Validate(%v) = %v", bad, r.Err())
		}
	}
	if r := p.Validate(map[string]any{"op": "push", "payload": "ok"}); !r.OK() || p.Index() != before {
		t.Errorf("Validate of a good command: %v, index %d", r.Err(), p.Index())
	}
	st := p.State()
	if len(st) != 2 || string(st[0].Key) != "j/\x00\x00\x00\x00\x00\x00\x00\x04" || string(st[1].Key) != "seq" {
		t.Errorf("state %v", st)
	}
}

func TestUpgradeMigrates(t *testing.T) {
	p := load(t, build(t, "./examples/queue"), opts())
	for range 3 {
		p.Command(map[string]any{"op": "push", "payload": "x"})
	}
	res, err := p.Upgrade(build(t, "./examples/queue/v2"))
	if err != nil || !res.OK() {
		t.Fatalf("upgrade: %v %v", res.Err(), err)
	}
	if p.Info().Version != "2.0.0" || !p.HasMigrate() || p.Index() != 4 {
		t.Errorf("after the upgrade: %+v, index %d", p.Info(), p.Index())
	}
	j, err := plugintest.Decode[job](p.Command(map[string]any{"op": "pop"}))
	if err != nil || j.ID != 1 || j.Attempts != 1 {
		t.Errorf("v2 pop = %+v, %v", j, err)
	}
}

// A migration that fails leaves the old module active and the state as it
// was, as a cluster does.
func TestFailedUpgradeKeepsOldModule(t *testing.T) {
	o := opts()
	o.Index = 10
	o.State = []abi.Record{{Key: []byte("j/\x00\x00\x00\x00\x00\x00\x00\x01"), Value: []byte{0xc1}, Version: 7}}
	p := load(t, build(t, "./examples/queue"), o)
	res, err := p.Upgrade(build(t, "./examples/queue/v2"))
	if err != nil || res.Code != abi.CodeInternal || !strings.Contains(string(res.Data), "does not decode") {
		t.Fatalf("upgrade over a bad record: %v, %v", res.Err(), err)
	}
	if p.Info().Version != "1.0.0" {
		t.Errorf("active version %s after a failed migration", p.Info().Version)
	}
	if st := p.State(); len(st) != 1 || st[0].Version != 7 {
		t.Errorf("state changed: %v", st)
	}
	if r := p.Command(map[string]any{"op": "push", "payload": "y"}); !r.OK() || p.Index() != 12 {
		t.Errorf("v1 after the failed upgrade: %v, index %d", r.Err(), p.Index())
	}
}

func TestLoadRefusesWhatTheHostRefuses(t *testing.T) {
	if _, err := plugintest.Load([]byte("\x00asm\x01\x00\x00\x00"), opts()); err == nil || !strings.Contains(err.Error(), "raftkv_abi_v1") {
		t.Errorf("empty module: %v", err)
	}
	if _, err := plugintest.Load(build(t, "./examples/queue"), plugintest.Options{State: []abi.Record{{}}}); err == nil {
		t.Error("an empty key in the initial state was accepted")
	}
}

//go:build !wasip1

package main

// Tests of the ledger built to WebAssembly: the modules are compiled from
// source with `go build` (GOOS=wasip1 GOARCH=wasm, c-shared) and run by the
// real runtime (host/plugin) against the real host store (host/state).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/examples/ledger/ledger"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/internal/sdknative"
)

var (
	buildMu sync.Mutex
	built   = map[string][]byte{}
)

// buildModule compiles the ledger command pkg ("." for v1, "./v2" for v2)
// exactly as README.md says, once per test binary.
func buildModule(t testing.TB, pkg string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[pkg]; ok {
		return b
	}
	dir, err := os.MkdirTemp("", "ledger-wasm")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "ledger.wasm")
	start := time.Now()
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s: %d bytes in %v", pkg, len(b), time.Since(start).Round(time.Millisecond))
	built[pkg] = b
	return b
}

// cacheDir is the compiled-code cache internal/cluster's nodes use too, so a
// module compiled here is not compiled again by the cluster test.
func cacheDir() string { return filepath.Join(os.TempDir(), "raftkv-test-wasm-cache") }

func newRuntime(t testing.TB) *plugin.Runtime {
	t.Helper()
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = 256 // 16 MiB, half the host default: the ledger runs in it
	cfg.CacheDir = cacheDir()
	r, err := plugin.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func instantiate(t testing.TB, r *plugin.Runtime, wasm []byte) (*plugin.Module, *plugin.Instance) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	lim := plugin.DefaultLimits()
	lim.MemoryPages = r.Config().MemoryLimitPages
	mod, err := r.Load(ctx, wasm, plugin.LoadOptions{Name: "ledger", Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %s %s in %v", mod.Info.Name, mod.Info.Version, time.Since(start).Round(time.Millisecond))
	in, err := r.Instantiate(ctx, mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(ctx) })
	return mod, in
}

// runner is what plugin.Instance and plugin.Native have in common.
type runner interface {
	Apply(ctx context.Context, st plugin.Store, entries []abi.Entry) ([]abi.Result, error)
	Query(ctx context.Context, st plugin.ReadStore, q []byte) (abi.Result, error)
}

// target runs a plugin against a real host store, as the node's FSM does.
type target struct {
	t  testing.TB
	r  runner
	s  *state.Store
	ns *state.Namespace
}

func newTarget(t testing.TB, r runner) *target {
	s := state.New()
	var ns *state.Namespace
	s.Update(func() { ns = s.Namespace("ledger") })
	return &target{t: t, r: r, s: s, ns: ns}
}

func (g *target) apply(entries []abi.Entry) []abi.Result {
	g.t.Helper()
	var res []abi.Result
	var err error
	g.s.Update(func() { res, err = g.r.Apply(context.Background(), g.ns, entries) })
	if err != nil {
		g.t.Fatalf("apply: %v", err)
	}
	if len(res) != len(entries) {
		g.t.Fatalf("%d results for %d entries", len(res), len(entries))
	}
	return res
}

func (g *target) query(q any) abi.Result {
	g.t.Helper()
	view, _ := g.s.View().Namespace("ledger")
	res, err := g.r.Query(context.Background(), view, enc(g.t, q))
	if err != nil {
		g.t.Fatalf("query: %v", err)
	}
	return res
}

func (g *target) get(q any, out any) {
	g.t.Helper()
	r := g.query(q)
	if !r.OK() {
		g.t.Fatalf("%v: %v", q, r.Err())
	}
	if err := msgpack.Unmarshal(r.Data, out); err != nil {
		g.t.Fatalf("%v: %v", q, err)
	}
}

func (g *target) dump() string {
	var b strings.Builder
	g.ns.Scan(nil, nil, 0, func(k, v []byte, ver uint64) bool {
		fmt.Fprintf(&b, "%q=%x@%d\n", k, v, ver)
		return true
	})
	return b.String()
}

type m = map[string]any

func enc(t testing.TB, v any) []byte {
	t.Helper()
	if b, ok := v.([]byte); ok {
		return b
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC).UnixNano()

func entry(t testing.TB, index uint64, cmd any) abi.Entry {
	return abi.Entry{Index: index, Term: 2, Time: t0 + int64(index)*int64(time.Millisecond), Data: enc(t, cmd)}
}

type auditResult struct {
	Supply   uint64 `msgpack:"supply"`
	Sum      uint64 `msgpack:"sum"`
	Accounts uint64 `msgpack:"accounts"`
	Counted  uint64 `msgpack:"counted"`
	OK       bool   `msgpack:"ok"`
}

type balance struct {
	Account string `msgpack:"account"`
	Balance uint64 `msgpack:"balance"`
	TxCount uint64 `msgpack:"tx_count"`
	LastTx  uint64 `msgpack:"last_tx"`
}

// workload generates random ledger commands: a few opens and deposits and
// many transfers, some overdrawing, some naming missing accounts, a few
// malformed, some reusing a ref.
type workload struct {
	rng   *rand.Rand
	names []string
	refs  int
}

func newWorkload(seed uint64, accounts int) *workload {
	w := &workload{rng: rand.New(rand.NewPCG(seed, 1))}
	for i := range accounts {
		w.names = append(w.names, fmt.Sprintf("acct-%d", i))
	}
	return w
}

func (w *workload) name() string { return w.names[w.rng.IntN(len(w.names))] }

func (w *workload) next() any {
	switch k := w.rng.IntN(100); {
	case k < 2:
		return []byte{0x93, 0xc1} // malformed
	case k < 5:
		return m{"op": "open", "account": w.name()}
	case k < 12:
		return m{"op": "deposit", "account": w.name(), "amount": w.rng.IntN(500) + 1}
	case k < 15:
		w.refs++
		return m{"op": "transfer", "from": w.name(), "to": w.name(), "amount": w.rng.IntN(300) + 1, "ref": fmt.Sprintf("ref-%d", w.rng.IntN(w.refs))}
	case k < 17:
		return m{"op": "transfer", "from": w.name(), "to": "nobody", "amount": 1}
	default:
		return m{"op": "transfer", "from": w.name(), "to": w.name(), "amount": w.rng.IntN(300) + 1}
	}
}

// checkInvariants: the supply equals the sum of the successful deposits and
// the sum of the balances, and no balance exceeds the supply (balances are
// unsigned, so none is negative).
func checkInvariants(t testing.TB, g *target, minted uint64) {
	t.Helper()
	var a auditResult
	g.get(m{"op": "audit"}, &a)
	if !a.OK || a.Supply != minted || a.Sum != minted {
		t.Fatalf("audit %+v, minted %d", a, minted)
	}
	var page struct {
		Accounts []balance `msgpack:"accounts"`
	}
	g.get(m{"op": "accounts", "limit": 1000}, &page)
	if uint64(len(page.Accounts)) != a.Accounts {
		t.Fatalf("%d accounts listed, %d counted", len(page.Accounts), a.Accounts)
	}
	for _, b := range page.Accounts {
		if b.Balance > a.Supply {
			t.Fatalf("%s holds %d, more than the supply %d", b.Account, b.Balance, a.Supply)
		}
	}
}

// TestWasmRandomTransfers runs random batches through ledger.wasm and through
// the same Go code natively: every result and the final state must be
// identical, and the ledger's invariants hold after every batch.
func TestWasmRandomTransfers(t *testing.T) {
	_, in := instantiate(t, newRuntime(t), buildModule(t, "."))
	wasm, native := newTarget(t, in), newTarget(t, plugin.NewNative(sdknative.Code(ledger.V1)))
	w := newWorkload(42, 12)
	var index, minted uint64
	codes := map[abi.Code]int{}
	for batch := 0; batch < 60; batch++ {
		entries := make([]abi.Entry, 1+w.rng.IntN(64))
		for i := range entries {
			index++
			entries[i] = entry(t, index, w.next())
		}
		got, want := wasm.apply(entries), native.apply(entries)
		for i := range entries {
			if got[i].Code != want[i].Code || string(got[i].Data) != string(want[i].Data) {
				t.Fatalf("entry %d: wasm %v %q, native %v %q", entries[i].Index, got[i].Code, got[i].Data, want[i].Code, want[i].Data)
			}
			codes[got[i].Code]++
			if got[i].OK() {
				var dep struct {
					Supply uint64 `msgpack:"supply"`
				}
				msgpack.Unmarshal(got[i].Data, &dep)
				if dep.Supply != 0 { // a deposit
					minted = dep.Supply
				}
			}
		}
		checkInvariants(t, wasm, minted)
	}
	if wasm.dump() != native.dump() {
		t.Fatal("wasm and native states differ")
	}
	for _, c := range []abi.Code{abi.CodeOK, abi.CodeBadRequest, abi.CodeNotFound, abi.CodeConflict, ledger.CodeInsufficientFunds} {
		if codes[c] == 0 {
			t.Errorf("the workload never produced %v: %v", c, codes)
		}
	}
	t.Logf("%d entries, results by code %v, supply %d, %d guest pages", index, codes, minted, in.MemoryPages())
}

// TestWasmErrors: errors come back with their code and message, and a failed
// entry in the middle of a batch changes nothing while its neighbours apply.
func TestWasmErrors(t *testing.T) {
	mod, in := instantiate(t, newRuntime(t), buildModule(t, "."))
	if mod.Info.Name != "ledger" || mod.Info.Version != "1.0.0" {
		t.Fatalf("module info %+v", mod.Info)
	}
	g := newTarget(t, in)
	res := g.apply([]abi.Entry{
		entry(t, 1, m{"op": "open", "account": "alice"}),
		entry(t, 2, m{"op": "open", "account": "bob"}),
		entry(t, 3, m{"op": "deposit", "account": "alice", "amount": 10}),
		entry(t, 4, m{"op": "transfer", "from": "alice", "to": "bob", "amount": 11}),
		entry(t, 5, m{"op": "transfer", "from": "alice", "to": "bob", "amount": 4, "ref": "p-1"}),
		entry(t, 6, m{"op": "transfer", "from": "alice", "to": "bob", "amount": 4, "ref": "p-1"}),
		entry(t, 7, []byte("not msgpack")),
		entry(t, 8, m{"op": "transfer", "from": "alice", "to": "carol", "amount": 1}),
		entry(t, 9, m{"op": "open", "account": "bob"}),
		entry(t, 10, m{"op": "deposit", "account": "bob", "amount": 1}),
	})
	want := []struct {
		code abi.Code
		msg  string
	}{
		{abi.CodeOK, ""}, {abi.CodeOK, ""}, {abi.CodeOK, ""},
		{ledger.CodeInsufficientFunds, "insufficient funds: account alice holds 10, the transfer needs 11"},
		{abi.CodeOK, ""},
		{abi.CodeConflict, `duplicate ref "p-1": already applied as tx 5`},
		{abi.CodeBadRequest, `command: expected a MsgPack map with an "op" field (a JSON object over HTTP)`},
		{abi.CodeNotFound, "account carol not found"},
		{abi.CodeConflict, "account bob already exists"},
		{abi.CodeOK, ""},
	}
	for i, w := range want {
		if res[i].Code != w.code || (w.code != abi.CodeOK && string(res[i].Data) != w.msg) {
			t.Errorf("entry %d: %v %q, want %v %q", i+1, res[i].Code, res[i].Data, w.code, w.msg)
		}
	}
	var a, b balance
	g.get(m{"op": "balance", "account": "alice"}, &a)
	g.get(m{"op": "balance", "account": "bob"}, &b)
	if a.Balance != 6 || b.Balance != 5 {
		t.Fatalf("alice %d, bob %d; want 6 and 5", a.Balance, b.Balance)
	}
	checkInvariants(t, g, 11)
	if r := g.query(m{"op": "transfer"}); r.Code != abi.CodeBadRequest {
		t.Fatalf("a command sent as a query: %v", r.Err())
	}
}

// TestWasmUpgrade: v1 state migrated by v2.wasm, through the host's migrate
// call, keeps its balances and gains the history of v1's transactions.
func TestWasmUpgrade(t *testing.T) {
	r := newRuntime(t)
	_, v1 := instantiate(t, r, buildModule(t, "."))
	mod2, v2 := instantiate(t, r, buildModule(t, "./v2"))
	if mod2.Info.Version != "2.0.0" || !mod2.HasMigrate {
		t.Fatalf("v2 info %+v, has migrate %v", mod2.Info, mod2.HasMigrate)
	}
	g := newTarget(t, v1)
	w := newWorkload(7, 6)
	var entries []abi.Entry
	for _, n := range w.names {
		entries = append(entries, entry(t, uint64(len(entries)+1), m{"op": "open", "account": n}))
		entries = append(entries, entry(t, uint64(len(entries)+1), m{"op": "deposit", "account": n, "amount": 1000}))
	}
	for range 300 {
		entries = append(entries, entry(t, uint64(len(entries)+1), m{"op": "transfer", "from": w.name(), "to": w.name(), "amount": w.rng.IntN(200) + 1}))
	}
	transfers := 0
	for _, r := range g.apply(entries) {
		if r.OK() {
			transfers++
		}
	}
	transfers -= 2 * len(w.names)
	minted := uint64(1000 * len(w.names))
	checkInvariants(t, g, minted)

	// A migration from an unknown version is refused and changes nothing.
	before := g.dump()
	var res abi.Result
	var err error
	deploy := abi.Entry{Index: uint64(len(entries) + 1), Term: 2, Time: t0 + 1e12}
	g.s.Update(func() {
		res, err = v2.Migrate(context.Background(), g.ns, abi.Migration{FromHash: "00", FromVersion: "", Index: deploy.Index}, deploy)
	})
	if err != nil || res.Code != abi.CodeConflict {
		t.Fatalf("migration from an unversioned module: %v %v", res.Err(), err)
	}
	if g.dump() != before {
		t.Fatal("a refused migration changed the state")
	}
	g.s.Update(func() {
		res, err = v2.Migrate(context.Background(), g.ns, abi.Migration{FromHash: plugin.HashOf(buildModule(t, ".")), FromVersion: "1.0.0", Index: deploy.Index}, deploy)
	})
	if err != nil || !res.OK() {
		t.Fatalf("migration: %v %v", res.Err(), err)
	}

	g.r = v2
	checkInvariants(t, g, minted)
	var total uint64
	for _, n := range w.names {
		var b balance
		g.get(m{"op": "balance", "account": n}, &b)
		var h struct {
			Transactions []struct {
				Tx uint64 `msgpack:"tx"`
			} `msgpack:"transactions"`
		}
		g.get(m{"op": "history", "account": n, "limit": 1000}, &h)
		if b.TxCount == 0 || uint64(len(h.Transactions)) != b.TxCount || h.Transactions[len(h.Transactions)-1].Tx != b.LastTx {
			t.Fatalf("%s after the migration: %+v, %d history entries", n, b, len(h.Transactions))
		}
		total += b.TxCount
	}
	// Every deposit counts once, every transfer twice.
	if want := uint64(len(w.names) + 2*transfers); total != want {
		t.Fatalf("tx counts add up to %d, want %d", total, want)
	}
	// v2 keeps maintaining the new fields.
	for _, r := range g.apply([]abi.Entry{
		entry(t, deploy.Index+1, m{"op": "deposit", "account": w.names[0], "amount": 1}),
		entry(t, deploy.Index+2, m{"op": "transfer", "from": w.names[0], "to": w.names[1], "amount": 1}),
	}) {
		if !r.OK() {
			t.Fatal(r.Err())
		}
	}
	var b balance
	g.get(m{"op": "balance", "account": w.names[1]}, &b)
	if b.LastTx != deploy.Index+2 {
		t.Fatalf("after a v2 transfer: %+v", b)
	}
}

// TestHistoryPageFitsQueryFuel: a history page of the default size (100)
// is answered within a quarter of the default query fuel, the first of an
// instance included, as ledger/doc.go promises (the typed codec's cost per entry is
// what decides it).
func TestHistoryPageFitsQueryFuel(t *testing.T) {
	mod, in := instantiate(t, newRuntime(t), buildModule(t, "./v2"))
	g := newTarget(t, in)
	entries := []abi.Entry{entry(t, 1, m{"op": "open", "account": "a"})}
	for i := range 2 * ledger.DefaultLimit {
		entries = append(entries, entry(t, uint64(i+2), m{"op": "deposit", "account": "a", "amount": 1}))
	}
	g.apply(entries)
	page := func() uint64 {
		before := mod.Counters().FuelUsed
		if res := g.query(m{"op": "history", "account": "a"}); !res.OK() {
			t.Fatalf("a default page: %d %s", res.Code, res.Data)
		}
		return mod.Counters().FuelUsed - before
	}
	first, used := page(), page()
	t.Logf("a page of %d history entries used %d fuel (%d per entry) of %d, the instance's first %d", ledger.DefaultLimit, used, used/ledger.DefaultLimit, plugin.DefaultLimits().QueryFuel, first)
	// The codec's fast paths (abi.Unmarshal, sdk.Marshal) and FormatTime
	// hold an entry under 45k (some 33k); before them it cost 130k.
	if perEntry := used / ledger.DefaultLimit; perEntry > 45_000 {
		t.Errorf("a history entry costs %d fuel, want at most 45000", perEntry)
	}
	if limit := plugin.DefaultLimits().QueryFuel / 4; first > limit {
		t.Errorf("the first page of an instance used %d fuel, want at most %d (a quarter of the default query fuel)", first, limit)
	}
}

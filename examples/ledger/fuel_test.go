//go:build !wasip1

package main

import (
	"context"
	"testing"

	"github.com/raftkv/raftkv/abi"
)

// TestFuelBreakdown measures, in fuel, the pieces a history entry is made of,
// with the probe module testdata/fuelprobe (built to WebAssembly and run on
// the real runtime): each piece is run n times in one query, and its cost is
// the difference with 0 times, over n. Every query is run once first, so
// that the figures are those of a warm instance (the msgpack library builds
// its per-type codecs on first use). The ceilings hold the codec's fast paths
// (abi/fast.go, plugins/sdk/codec.go) and FormatTime: before them a
// transaction's Unmarshal cost 42k, a txResp's Marshal 67k (62k inside a
// page), Validate of 150 bytes 4.1k, time.Format 7.1k.
func TestFuelBreakdown(t *testing.T) {
	mod, in := instantiate(t, newRuntime(t), buildModule(t, "./testdata/fuelprobe"))
	g := newTarget(t, in)
	const n = 100
	if res := g.apply([]abi.Entry{entry(t, 1, m{"op": "seed", "n": 2 * n})}); !res[0].OK() {
		t.Fatal(res[0].Err())
	}
	fuel := func(op string, n int) uint64 {
		t.Helper()
		before := mod.Counters().FuelUsed
		if res := g.query(m{"op": op, "n": n}); !res.OK() {
			t.Fatalf("%s: %v", op, res.Err())
		}
		return mod.Counters().FuelUsed - before
	}
	for _, c := range []struct {
		op, what string
		max      uint64 // per iteration
	}{
		{"validate/deposit", "abi.Validate of a deposit's record (62 bytes)", 2_200},
		{"validate/transfer", "abi.Validate of a transfer's record with a ref (150 bytes)", 3_000},
		{"unmarshal/deposit", "abi.Unmarshal of a deposit's record into a transaction", 18_000},
		{"unmarshal/transfer", "abi.Unmarshal of a transfer's record into a transaction", 25_000},
		{"unmarshal/byte", "abi.Unmarshal of a history value into a byte", 6_000},
		{"marshal/abi", "abi.Marshal of a txResp", 0},
		{"marshal/sdk", "sdk.Marshal of a txResp", 12_000},
		{"result", "a txResp in a history page's result (sdk.Result)", 7_000},
		{"formattime", "ledger.FormatTime", 5_500},
		{"alloc/24", "a 24-byte string allocated (string(b))", 0},
		{"alloc/128", "a 128-byte slice allocated (make)", 0},
		{"time.Format", "time.Format(time.RFC3339Nano), which FormatTime replaced", 0},
		{"state_get", "State.Get of a t/ key (the state_get host call)", 0},
		{"mapload", "Map.MayLoad of a transaction (state_get and Unmarshal)", 20_000},
		{"iterate", "a history key visited by Map.From (scan, key and value decoding)", 0},
	} {
		first := fuel(c.op, n)
		zero, many := fuel(c.op, 0), fuel(c.op, n)
		per := (many - zero) / n
		t.Logf("%-20s %7d fuel each (first query %d more): %s", c.op, per, int64(first)-int64(many), c.what)
		if c.max != 0 && per > c.max {
			t.Errorf("%s: %d fuel each, want at most %d", c.op, per, c.max)
		}
	}
}

// TestMigrationFuel measures what v2's migration costs per v1 transaction
// (README.md, section 5, quotes it): v1 applies some transactions, v2
// migrates them through the host's migrate call.
func TestMigrationFuel(t *testing.T) {
	r := newRuntime(t)
	_, v1 := instantiate(t, r, buildModule(t, "."))
	mod2, v2 := instantiate(t, r, buildModule(t, "./v2"))
	g := newTarget(t, v1)
	w := newWorkload(11, 20)
	var entries []abi.Entry
	for _, n := range w.names {
		entries = append(entries, entry(t, uint64(len(entries)+1), m{"op": "open", "account": n}))
		entries = append(entries, entry(t, uint64(len(entries)+1), m{"op": "deposit", "account": n, "amount": 1000000}))
	}
	const transfers = 1000
	for range transfers {
		entries = append(entries, entry(t, uint64(len(entries)+1), m{"op": "transfer", "from": w.name(), "to": w.name(), "amount": w.rng.IntN(200) + 1}))
	}
	txs := 0
	for _, res := range g.apply(entries) {
		if res.OK() {
			txs++
		}
	}
	txs -= len(w.names) // the opens
	deploy := abi.Entry{Index: uint64(len(entries) + 1), Term: 2, Time: t0 + 1e12}
	before := mod2.Counters().FuelUsed
	var res abi.Result
	var err error
	g.s.Update(func() {
		res, err = v2.Migrate(context.Background(), g.ns, abi.Migration{FromHash: "00", FromVersion: "1.0.0", Index: deploy.Index}, deploy)
	})
	if err != nil || !res.OK() {
		t.Fatalf("migration: %v %v", res.Err(), err)
	}
	used := mod2.Counters().FuelUsed - before
	per := used / uint64(txs)
	t.Logf("migrating %d accounts and %d transactions used %d fuel (%d per transaction)", len(w.names), txs, used, per)
	// Before the codec's fast paths it cost 88k per transaction.
	if per > 55_000 {
		t.Errorf("the migration costs %d fuel per transaction, want at most 55000", per)
	}
}

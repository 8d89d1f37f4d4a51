// Package fsmtest checks implementations of the KV state machine against each
// other: the same seeded random operations go to a reference (usually
// internal/kvmodel) and to the implementation under test (the kvstore
// plugin natively, or the wasm module on the host runtime), and every result
// and the final state must be identical, byte for byte.
package fsmtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// Target is a state machine under test.
type Target interface {
	// Apply runs committed entries in order and returns one result per
	// entry; a failed entry must leave no trace in the state.
	Apply(entries []abi.Entry) []abi.Result
	// Query answers a read-only query.
	Query(q []byte) abi.Result
	// Dump returns the whole state in key order.
	Dump() []abi.Record
}

// MaxBatch is the largest batch Compare forms.
const MaxBatch = 600

// Compare runs the n operations of Steps(seed, n) on ref and got and fails t
// at the first difference: commands go in batches of random size (1 to
// MaxBatch, cut short by queries) at consecutive indexes from 1, with the
// term and leader time advancing; queries go to both between batches, and
// LIST answers with "next" are followed for a few pages. Both states are
// compared periodically and at the end.
func Compare(t *testing.T, seed int64, n int, ref, got Target) {
	t.Helper()
	c := &comparison{t: t, ref: ref, got: got, r: rand.New(rand.NewPCG(uint64(seed), 0xba7c4)), index: 1, term: 1}
	steps := Steps(seed, n)
	var batch []abi.Entry
	var batchSteps []int
	size := c.batchSize()
	for i, s := range steps {
		if s.Query {
			c.flush(batch, batchSteps)
			batch, batchSteps = batch[:0], batchSteps[:0]
			c.query(i, s.Data)
			continue
		}
		batch = append(batch, abi.Entry{Index: c.index, Term: c.term, Time: 1_700_000_000_000_000_000 + int64(c.index)*1_000_003, Data: s.Data})
		batchSteps = append(batchSteps, i)
		c.index++
		if len(batch) >= size {
			c.flush(batch, batchSteps)
			batch, batchSteps = batch[:0], batchSteps[:0]
			size = c.batchSize()
		}
	}
	c.flush(batch, batchSteps)
	c.compareDumps(len(steps))
	t.Logf("seed %d: %d operations, %d batches, %d queries (%d LIST pages followed), %d keys at the end",
		seed, n, c.batches, c.queries, c.pages, len(ref.Dump()))
}

type comparison struct {
	t                       *testing.T
	ref, got                Target
	r                       *rand.Rand
	index, term             uint64
	batches, queries, pages int
}

func (c *comparison) batchSize() int {
	if c.r.IntN(4) == 0 {
		return 1 + c.r.IntN(4)
	}
	return 1 + c.r.IntN(MaxBatch)
}

func (c *comparison) flush(batch []abi.Entry, steps []int) {
	if len(batch) == 0 {
		return
	}
	c.t.Helper()
	c.batches++
	rr := c.ref.Apply(batch)
	gr := c.got.Apply(batch)
	if len(rr) != len(batch) || len(gr) != len(batch) {
		c.t.Fatalf("batch of %d entries at step %d: ref returned %d results, got %d", len(batch), steps[0], len(rr), len(gr))
	}
	for i := range batch {
		if !equalResults(rr[i], gr[i]) {
			c.t.Fatalf("step %d (entry %d of a batch of %d, index %d): command %s\nref: %s\ngot: %s",
				steps[i], i, len(batch), batch[i].Index, describe(batch[i].Data), showResult(rr[i]), showResult(gr[i]))
		}
	}
	if c.r.IntN(8) == 0 {
		c.compareDumps(steps[len(steps)-1])
	}
	if c.r.IntN(20) == 0 {
		c.term++
	}
}

func (c *comparison) query(step int, q []byte) {
	c.t.Helper()
	c.queries++
	for page := 0; ; page++ {
		rr, gr := c.ref.Query(q), c.got.Query(q)
		if !equalResults(rr, gr) {
			c.t.Fatalf("step %d (page %d): query %s\nref: %s\ngot: %s", step, page, describe(q), showResult(rr), showResult(gr))
		}
		next := listNext(rr)
		if next == nil || page >= 3 {
			return
		}
		c.pages++
		q = withStart(q, next)
	}
}

func (c *comparison) compareDumps(step int) {
	c.t.Helper()
	rd, gd := c.ref.Dump(), c.got.Dump()
	for i := 0; i < len(rd) || i < len(gd); i++ {
		switch {
		case i >= len(rd):
			c.t.Fatalf("after step %d: state has extra key %q (version %d)", step, gd[i].Key, gd[i].Version)
		case i >= len(gd):
			c.t.Fatalf("after step %d: state lacks key %q (version %d)", step, rd[i].Key, rd[i].Version)
		case !bytes.Equal(rd[i].Key, gd[i].Key) || !bytes.Equal(rd[i].Value, gd[i].Value) || rd[i].Version != gd[i].Version:
			c.t.Fatalf("after step %d: record %d differs:\nref: %q = %.60q @%d\ngot: %q = %.60q @%d", step, i,
				rd[i].Key, rd[i].Value, rd[i].Version, gd[i].Key, gd[i].Value, gd[i].Version)
		}
	}
}

func equalResults(a, b abi.Result) bool {
	return a.Code == b.Code && bytes.Equal(a.Data, b.Data)
}

func showResult(r abi.Result) string {
	if r.Code != abi.CodeOK {
		return fmt.Sprintf("%v: %q", r.Code, r.Data)
	}
	return fmt.Sprintf("ok: %s (% x)", describe(r.Data), truncate(r.Data, 64))
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// listNext returns the "next" key of a successful LIST answer, or nil.
func listNext(r abi.Result) []byte {
	if r.Code != abi.CodeOK {
		return nil
	}
	var ans struct {
		Items []msgpack.RawMessage `msgpack:"items"`
		Next  []byte               `msgpack:"next"`
	}
	if msgpack.Unmarshal(r.Data, &ans) != nil || ans.Items == nil {
		return nil
	}
	return ans.Next
}

// withStart returns the LIST query q with its start field set to start.
func withStart(q, start []byte) []byte {
	var m map[string]any
	if err := msgpack.Unmarshal(q, &m); err != nil {
		panic(err) // q was answered successfully, so it decodes
	}
	m["start"] = start
	b, err := msgpack.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// NewMemTarget returns a Target that runs plugin p natively on an
// sdk.MemState, which follows the host's rules (per-entry atomicity,
// read-only queries).
func NewMemTarget(p sdk.Plugin) Target {
	return &memTarget{p: p, st: sdk.NewMemState()}
}

type memTarget struct {
	p  sdk.Plugin
	st *sdk.MemState
}

func (m *memTarget) Apply(entries []abi.Entry) []abi.Result { return m.st.Apply(m.p, entries...) }
func (m *memTarget) Query(q []byte) abi.Result              { return m.st.Query(m.p, q) }
func (m *memTarget) Dump() []abi.Record                     { return m.st.Dump() }

package queue

import (
	"fmt"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// harness applies commands to a MemState one entry at a time, as the host
// does, with index i and time i seconds.
type harness struct {
	t  *testing.T
	st *sdk.MemState
	p  sdk.Plugin
	i  uint64
}

func (h *harness) cmd(v map[string]any) abi.Result {
	h.t.Helper()
	h.i++
	b, err := sdk.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.st.Apply(h.p, abi.Entry{Index: h.i, Term: 1, Time: int64(h.i) * 1e9, Data: b})[0]
}

func (h *harness) query(v map[string]any) abi.Result {
	b, _ := sdk.Marshal(v)
	return h.st.Query(h.p, b)
}

func decode[T any](t *testing.T, r abi.Result) T {
	t.Helper()
	var v T
	if !r.OK() {
		t.Fatal(r.Err())
	}
	if err := sdk.Unmarshal(r.Data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestV1FIFO(t *testing.T) {
	h := &harness{t: t, st: sdk.NewMemState(), p: V1}
	for i := 1; i <= 5; i++ {
		if got := decode[idResp](t, h.cmd(map[string]any{"op": "push", "payload": fmt.Sprint("job", i)})); got.ID != uint64(i) {
			t.Fatalf("push %d: id %d", i, got.ID)
		}
	}
	if got := decode[Job](t, h.query(map[string]any{"op": "peek"})); got.ID != 1 || got.Payload != "job1" {
		t.Errorf("peek = %+v", got)
	}
	for i := 1; i <= 3; i++ {
		got := decode[Job](t, h.cmd(map[string]any{"op": "pop"}))
		if got.ID != uint64(i) || got.Payload != fmt.Sprint("job", i) || got.Pushed != int64(i)*1000 {
			t.Errorf("pop %d = %+v", i, got)
		}
	}
	if got := decode[map[string]int](t, h.query(map[string]any{"op": "len"})); got["queued"] != 2 {
		t.Errorf("len = %v", got)
	}
	l := decode[sdk.Page[uint64, Job]](t, h.query(map[string]any{"op": "list", "limit": 1}))
	if len(l.Items) != 1 || l.Items[0].ID != 4 || l.Next == nil || *l.Next != 4 {
		t.Errorf("list = %+v", l)
	}
	l = decode[sdk.Page[uint64, Job]](t, h.query(map[string]any{"op": "list", "after": *l.Next}))
	if len(l.Items) != 1 || l.Items[0].ID != 5 || l.Next != nil {
		t.Errorf("list after = %+v", l)
	}
	if r := h.query(map[string]any{"op": "list", "limit": 1001}); r.Code != abi.CodeBadRequest {
		t.Errorf("list of 1001: %v", r.Err())
	}
	h.cmd(map[string]any{"op": "pop"})
	h.cmd(map[string]any{"op": "pop"})
	if r := h.cmd(map[string]any{"op": "pop"}); r.Code != abi.CodeNotFound {
		t.Errorf("pop of an empty queue: %v", r.Err())
	}
	// Ids are never reused.
	if got := decode[idResp](t, h.cmd(map[string]any{"op": "push", "payload": "x"})); got.ID != 6 {
		t.Errorf("id after emptying = %d", got.ID)
	}
	for _, bad := range []map[string]any{
		{"op": "push"},
		{"op": "push", "payload": string(make([]byte, MaxPayload+1))},
		{"op": "push", "payload": 7},
		{"op": "ack", "id": 1},
		{"op": "len"},
	} {
		if r := h.cmd(bad); r.Code != abi.CodeBadRequest {
			t.Errorf("%v: %v", bad, r.Err())
		}
	}
}

func TestV2LeasesAndRedelivery(t *testing.T) {
	h := &harness{t: t, st: sdk.NewMemState(), p: NewV2()}
	h.cmd(map[string]any{"op": "push", "payload": "a"}) // entry 1
	h.cmd(map[string]any{"op": "push", "payload": "b"}) // 2
	j := decode[Job](t, h.cmd(map[string]any{"op": "pop", "lease_ms": 2000}))
	if j.ID != 1 || j.Attempts != 1 || j.Until != 3000+2000 {
		t.Fatalf("pop = %+v", j)
	}
	// Still leased at entry 4: the next pop takes job 2.
	if j := decode[Job](t, h.cmd(map[string]any{"op": "pop", "lease_ms": 10000})); j.ID != 2 {
		t.Fatalf("second pop = %+v", j)
	}
	// Entry 5 (5000 ms): job 1's lease ran out, it is delivered again.
	j = decode[Job](t, h.cmd(map[string]any{"op": "pop"}))
	if j.ID != 1 || j.Attempts != 2 {
		t.Fatalf("redelivery = %+v", j)
	}
	if r := decode[idResp](t, h.cmd(map[string]any{"op": "ack", "id": 1})); r.ID != 1 {
		t.Error(r)
	}
	if r := h.cmd(map[string]any{"op": "ack", "id": 1}); r.Code != abi.CodeNotFound {
		t.Errorf("second ack: %v", r.Err())
	}
	if got := decode[map[string]int](t, h.query(map[string]any{"op": "len"})); got["queued"] != 0 || got["leased"] != 1 {
		t.Errorf("len = %v", got)
	}
	if r := h.cmd(map[string]any{"op": "pop"}); r.Code != abi.CodeNotFound {
		t.Errorf("pop with every job leased: %v", r.Err())
	}
}

// v1's queue survives the upgrade in order, and v2 hands it out.
func TestMigrateV1ToV2(t *testing.T) {
	h := &harness{t: t, st: sdk.NewMemState(), p: V1}
	for i := range 300 {
		h.cmd(map[string]any{"op": "push", "payload": fmt.Sprint("job", i)})
	}
	h.cmd(map[string]any{"op": "pop"})
	v2 := NewV2()
	h.i++
	if r := h.st.Migrate(v2, abi.Migration{FromVersion: "1.0.0", Index: h.i}); !r.OK() {
		t.Fatal(r.Err())
	}
	h.p = v2
	if got := decode[map[string]int](t, h.query(map[string]any{"op": "len"})); got["queued"] != 299 {
		t.Errorf("len after the migration = %v", got)
	}
	if j := decode[Job](t, h.cmd(map[string]any{"op": "pop"})); j.ID != 2 || j.Payload != "job1" || j.Pushed != 2000 {
		t.Errorf("first v2 pop = %+v", j)
	}
	if got := decode[idResp](t, h.cmd(map[string]any{"op": "push", "payload": "new"})); got.ID != 301 {
		t.Errorf("the sequence did not survive: id %d", got.ID)
	}
	for _, rec := range h.st.Dump() {
		if rec.Key[0] == 'j' {
			t.Fatalf("v1 key %q left after the migration", rec.Key)
		}
	}
}

package kvmodel

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

func enc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type m = map[string]any

func apply(t *testing.T, md *Model, index uint64, cmd any) abi.Result {
	t.Helper()
	return md.Apply([]abi.Entry{{Index: index, Data: enc(t, cmd)}})[0]
}

func TestFailedTxnChangesNothing(t *testing.T) {
	md := New()
	apply(t, md, 1, m{"op": "SET", "key": "a", "value": "1"})
	before := md.Dump()
	r := apply(t, md, 2, m{"op": "TXN", "ops": []any{
		m{"op": "SET", "key": "b", "value": "2"},
		m{"op": "DELETE", "key": "a"},
		m{"op": "CAS", "key": "b", "value": "3", "version": 1},
	}})
	if r.Code != abi.CodeConflict || string(r.Data) != "ops[2]: version mismatch: key has version 2, expected 1" {
		t.Fatalf("TXN: %v %q", r.Code, r.Data)
	}
	after := md.Dump()
	if len(after) != len(before) || !bytes.Equal(after[0].Key, []byte("a")) || after[0].Version != 1 {
		t.Fatalf("state after a failed TXN: %v", after)
	}
}

func TestQueriesDoNotWrite(t *testing.T) {
	md := New()
	for _, q := range []any{m{"op": "SET", "key": "a", "value": "1"}, m{"op": "TXN", "ops": []any{}}, m{"op": "GET", "key": "a"}} {
		md.Query(enc(t, q))
	}
	if len(md.Dump()) != 0 {
		t.Fatal("a query changed the state")
	}
}

func TestListBudget(t *testing.T) {
	md := New()
	for i := 0; i < 4; i++ {
		apply(t, md, uint64(i+1), m{"op": "SET", "key": fmt.Sprint("k", i), "value": make([]byte, 400<<10)})
	}
	r := md.Query(enc(t, m{"op": "LIST"}))
	var ans struct {
		Items []struct {
			Key []byte `msgpack:"key"`
		} `msgpack:"items"`
		Next []byte `msgpack:"next"`
	}
	if err := msgpack.Unmarshal(r.Data, &ans); err != nil {
		t.Fatal(err)
	}
	// 400 KiB items: two fit in 1 MiB, the third would not.
	if len(ans.Items) != 2 || string(ans.Next) != "k2" {
		t.Fatalf("%d items, next %q", len(ans.Items), ans.Next)
	}
	apply(t, md, 9, m{"op": "SET", "key": "big", "value": make([]byte, abi.MaxValueSize)})
	r = md.Query(enc(t, m{"op": "LIST", "prefix": "big"}))
	if r.Code != abi.CodeOK || len(r.Data) < abi.MaxValueSize {
		t.Fatalf("a single item larger than the budget must still be listed: %v, %d bytes", r.Code, len(r.Data))
	}
}

func TestDumpIsOrderedAndCopied(t *testing.T) {
	md := New()
	for i, k := range []string{"b", "\xff", "a", "\x00"} {
		apply(t, md, uint64(i+1), m{"op": "SET", "key": []byte(k), "value": "v"})
	}
	d := md.Dump()
	for i := 1; i < len(d); i++ {
		if bytes.Compare(d[i-1].Key, d[i].Key) >= 0 {
			t.Fatalf("Dump out of order: %q before %q", d[i-1].Key, d[i].Key)
		}
	}
	d[0].Value[0] = 'X'
	if md.Dump()[0].Value[0] != 'v' {
		t.Fatal("Dump shares memory with the model")
	}
}

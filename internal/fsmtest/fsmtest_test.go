package fsmtest_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/internal/fsmtest"
	"github.com/raftkv/raftkv/internal/kvmodel"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
)

// TestKVStoreMatchesModel is the main check of the KV plugin's logic: the
// kvstore plugin on the SDK's MemState against the independent model.
func TestKVStoreMatchesModel(t *testing.T) {
	n := 6000
	if testing.Short() || raceEnabled {
		n = 1500
	}
	for _, seed := range []int64{1, 2, 3, 42, 1234567} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fsmtest.Compare(t, seed, n, kvmodel.New(), fsmtest.NewMemTarget(kvplugin.KV{}))
		})
	}
}

// counting records what a Target answered, to check that the generated
// operations exercise every outcome.
type counting struct {
	fsmtest.Target
	codes  map[abi.Code]int
	msgs   map[string]int
	nexts  int
	txnsOK int
}

func (c *counting) Apply(entries []abi.Entry) []abi.Result {
	rs := c.Target.Apply(entries)
	for i, r := range rs {
		c.codes[r.Code]++
		if r.Code != abi.CodeOK {
			c.msgs[string(r.Data)]++
		} else if bytes.Contains(entries[i].Data, []byte("ops")) && bytes.HasPrefix(r.Data, []byte("\x81\xa7results")) {
			c.txnsOK++
		}
	}
	return rs
}

func (c *counting) Query(q []byte) abi.Result {
	r := c.Target.Query(q)
	c.codes[r.Code]++
	if bytes.Contains(r.Data, []byte("\xa4next")) {
		c.nexts++
	}
	return r
}

func TestGeneratorCoverage(t *testing.T) {
	c := &counting{Target: kvmodel.New(), codes: map[abi.Code]int{}, msgs: map[string]int{}}
	fsmtest.Compare(t, 7, 4000, c, fsmtest.NewMemTarget(kvplugin.KV{}))
	for _, code := range []abi.Code{abi.CodeOK, abi.CodeBadRequest, abi.CodeNotFound, abi.CodeConflict, abi.CodeTooLarge} {
		if c.codes[code] == 0 {
			t.Errorf("no result with code %v", code)
		}
	}
	for _, want := range []string{
		"malformed command: invalid msgpack", "malformed command: expected a map", "key exists", "key not found",
		"empty key", "missing value", "missing version", "missing op", "missing ops", "ops must be an array",
	} {
		if c.msgs[want] == 0 {
			t.Errorf("no command failed with %q", want)
		}
	}
	var mismatch, txnFail, unknown int
	for m, n := range c.msgs {
		switch {
		case bytes.HasPrefix([]byte(m), []byte("version mismatch")):
			mismatch += n
		case bytes.HasPrefix([]byte(m), []byte("ops[")):
			txnFail += n
		case bytes.HasPrefix([]byte(m), []byte("unknown op")):
			unknown += n
		}
	}
	if mismatch == 0 || txnFail == 0 || unknown == 0 || c.txnsOK == 0 || c.nexts == 0 {
		t.Errorf("version mismatches %d, failed TXNs %d, unknown ops %d, good TXNs %d, LIST answers with next %d: want all > 0",
			mismatch, txnFail, unknown, c.txnsOK, c.nexts)
	}
}

func TestStepsDeterministic(t *testing.T) {
	a, b := fsmtest.Steps(99, 500), fsmtest.Steps(99, 500)
	c := fsmtest.Steps(100, 500)
	same := 0
	for i := range a {
		if a[i].Query != b[i].Query || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("step %d differs between two runs with the same seed", i)
		}
		if a[i].Query == c[i].Query && bytes.Equal(a[i].Data, c[i].Data) {
			same++
		}
	}
	if same > 250 {
		t.Errorf("seeds 99 and 100 share %d of 500 steps", same)
	}
	ops := fsmtest.Ops(99, 300)
	if len(ops) != 300 {
		t.Fatalf("Ops returned %d commands, want 300", len(ops))
	}
	st := kvstoreTarget()
	entries := make([]abi.Entry, len(ops))
	for i, op := range ops {
		entries[i] = abi.Entry{Index: uint64(i + 1), Data: op}
	}
	ok := 0
	for _, r := range st.Apply(entries) {
		if r.Code == abi.CodeOK {
			ok++
		}
	}
	if ok < 100 {
		t.Errorf("only %d of 300 generated commands succeeded", ok)
	}
}

func kvstoreTarget() fsmtest.Target { return fsmtest.NewMemTarget(kvplugin.KV{}) }

// The protocol by example: each case runs on the model and on the plugin,
// which must both give the expected answer.
func TestProtocolExamples(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type step struct {
		cmd   any // a command (entry data), or
		query any // a query
		code  abi.Code
		want  any // the answer, as a value whose compact encoding must match, or the error message
	}
	type m = map[string]any
	type ver struct {
		Version uint64 `msgpack:"version"`
	}
	type del struct {
		Deleted bool `msgpack:"deleted"`
	}
	type got struct {
		Value   []byte `msgpack:"value"`
		Version uint64 `msgpack:"version"`
	}
	type item struct {
		Key     []byte `msgpack:"key"`
		Value   []byte `msgpack:"value"`
		Version uint64 `msgpack:"version"`
	}
	type list struct {
		Items []item `msgpack:"items"`
	}
	type listNext struct {
		Items []item `msgpack:"items"`
		Next  []byte `msgpack:"next"`
	}
	steps := []step{
		{cmd: m{"op": "SET", "key": "a", "value": "1"}, want: ver{1}},                 // index 1
		{cmd: m{"op": "set", "key": []byte("b"), "value": []byte("2")}, want: ver{2}}, // index 2
		{cmd: m{"op": "CAS", "key": "a", "value": "x", "version": 5}, code: abi.CodeConflict, // index 3
			want: "version mismatch: key has version 1, expected 5"},
		{cmd: m{"op": "CAS", "key": "a", "value": "3", "version": 1}, want: ver{4}}, // index 4
		{cmd: m{"op": "CAS", "key": "c", "value": "c", "version": 0}, want: ver{5}}, // index 5
		{cmd: m{"op": "CAS", "key": "c", "value": "c", "version": 0}, code: abi.CodeConflict, want: "key exists"},
		{cmd: m{"op": "CAS", "key": "d", "value": "d", "version": 9}, code: abi.CodeConflict, want: "key not found"},
		{cmd: m{"op": "DELETE", "key": "b", "value": ""}, want: del{true}}, // index 8
		{cmd: m{"op": "DELETE", "key": "b"}, want: del{false}},             // index 9
		{cmd: m{"op": "DELETE", "key": "c", "version": 4}, code: abi.CodeConflict, want: "version mismatch: key has version 5, expected 4"},
		{cmd: m{"op": "GET", "key": "a"}, want: got{[]byte("3"), 4}},
		{cmd: m{"op": "TXN", "ops": []any{ // index 12
			m{"op": "SET", "key": "t1", "value": "1"},
			m{"op": "CAS", "key": "t1", "value": "2", "version": 12},
			m{"op": "DELETE", "key": "a"},
		}}, want: m{"results": []any{ver{12}, ver{12}, del{true}}}},
		{cmd: m{"op": "TXN", "ops": []any{ // index 13: fails, changes nothing
			m{"op": "SET", "key": "t2", "value": "1"},
			m{"op": "CAS", "key": "t1", "value": "3", "version": 1},
		}}, code: abi.CodeConflict, want: "ops[1]: version mismatch: key has version 12, expected 1"},
		{cmd: m{"op": "TXN", "ops": []any{m{"op": "GET", "key": "x"}}}, code: abi.CodeBadRequest,
			want: `ops[0]: op "GET" is not allowed in a TXN (only SET, DELETE and CAS)`},
		{cmd: m{"op": "TXN", "ops": []any{}}, want: m{"results": []any{}}},
		{query: m{"op": "GET", "key": "t2"}, code: abi.CodeNotFound, want: "key not found"},
		{query: m{"op": "GET", "key": "t1"}, want: got{[]byte("2"), 12}},
		{query: m{"op": "LIST"}, want: list{[]item{{[]byte("c"), []byte("c"), 5}, {[]byte("t1"), []byte("2"), 12}}}},
		{query: m{"op": "LIST", "limit": 1}, want: listNext{[]item{{[]byte("c"), []byte("c"), 5}}, []byte("t1")}},
		{query: m{"op": "LIST", "limit": 1, "start": "t1"}, want: list{[]item{{[]byte("t1"), []byte("2"), 12}}}},
		{query: m{"op": "LIST", "prefix": "t"}, want: list{[]item{{[]byte("t1"), []byte("2"), 12}}}},
		{query: m{"op": "LIST", "end": "t"}, want: list{[]item{{[]byte("c"), []byte("c"), 5}}}},
		{query: m{"op": "LIST", "limit": 0}, code: abi.CodeBadRequest, want: "limit must be an integer between 1 and 10000"},
		{query: m{"op": "SET", "key": "a", "value": "v"}, code: abi.CodeBadRequest, want: `op "SET" is only valid as a command`},
		{cmd: m{"op": "LIST"}, code: abi.CodeBadRequest, want: `op "LIST" is only valid as a query`},
		{cmd: m{"op": "PUT", "key": "a"}, code: abi.CodeBadRequest, want: `unknown op "PUT"`},
		{cmd: m{"key": "a"}, code: abi.CodeBadRequest, want: "missing op"},
		{cmd: m{"op": "SET", "key": "", "value": "v"}, code: abi.CodeBadRequest, want: "empty key"},
		{cmd: m{"op": "SET", "key": "k"}, code: abi.CodeBadRequest, want: "missing value"},
		{cmd: m{"op": "SET", "key": 1, "value": "v"}, code: abi.CodeBadRequest, want: "key must be str or bin"},
		{cmd: m{"op": "CAS", "key": "k", "value": "v"}, code: abi.CodeBadRequest, want: "missing version"},
		{cmd: m{"op": "CAS", "key": "k", "value": "v", "version": -1}, code: abi.CodeBadRequest, want: "version must be a non-negative integer"},
		{cmd: m{"op": "SET", "key": string(make([]byte, abi.MaxKeySize+1)), "value": "v"}, code: abi.CodeTooLarge, want: "key too large: 4097 bytes (max 4096)"},
		{cmd: m{"op": "SET", "key": "k", "value": make([]byte, abi.MaxValueSize+1)}, code: abi.CodeTooLarge, want: "value too large: 1048577 bytes (max 1048576)"},
		{cmd: []any{"SET", "k", "v"}, code: abi.CodeBadRequest, want: "malformed command: expected a map"},
		{cmd: msgpack.RawMessage{0x81, 0xa2}, code: abi.CodeBadRequest, want: "malformed command: invalid msgpack"},
		{cmd: map[int]string{1: "x"}, code: abi.CodeBadRequest, want: "malformed command: field names must be strings"},
	}
	for _, target := range []struct {
		name string
		t    fsmtest.Target
	}{{"model", kvmodel.New()}, {"kvstore", kvstoreTarget()}} {
		t.Run(target.name, func(t *testing.T) {
			index := uint64(1)
			for i, s := range steps {
				var r abi.Result
				if s.cmd != nil {
					r = target.t.Apply([]abi.Entry{{Index: index, Term: 1, Data: enc(s.cmd)}})[0]
					index++
				} else {
					r = target.t.Query(enc(s.query))
				}
				if r.Code != s.code {
					t.Fatalf("step %d: code %v %q, want %v", i, r.Code, r.Data, s.code)
				}
				if s.code != abi.CodeOK {
					if string(r.Data) != s.want {
						t.Fatalf("step %d: message %q, want %q", i, r.Data, s.want)
					}
					continue
				}
				var buf bytes.Buffer
				e := msgpack.NewEncoder(&buf)
				e.UseCompactInts(true)
				e.SetSortMapKeys(true)
				if err := e.Encode(s.want); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(r.Data, buf.Bytes()) {
					t.Fatalf("step %d: answer % x\nwant      % x", i, r.Data, buf.Bytes())
				}
			}
		})
	}
}

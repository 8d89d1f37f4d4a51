package peerrpc

import (
	"bytes"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/internal/fsm"
)

// requests are requests of every method, as a forwarding node sends
// them (each decodes to itself).
func requests() []Body {
	return []Body{
		&PingBody{},
		&StatusBody{}, &StatusBody{Digests: true},
		&ApplyBody{Commands: []Command{{Plugin: "kv", Data: []byte{0x83, 0xa2, 'o', 'p'}}}},
		&ApplyBody{Commands: []Command{
			{Plugin: "kv", Key: "k-1", Data: []byte("a")},
			{Plugin: "big", Data: bytes.Repeat([]byte{7}, 70_000)}, // bin 32
			{Plugin: string(bytes.Repeat([]byte{'p'}, 300)), Key: "k-2", Data: bytes.Repeat([]byte{1}, 300)},
		}},
		&QueryBody{Plugin: "kv", Data: []byte("q"), Level: Linearizable},
		&QueryBody{Plugin: "kv", Data: []byte("q"), Level: Stale},
		&PluginListBody{Level: Linearizable}, &PluginListBody{Level: Leader},
		&JoinBody{Join: JoinRequest{NodeID: "n4", Address: "127.0.0.4:8088", PublicKey: "ssh-ed25519 AAAA n4"}},
		&JoinBody{Join: JoinRequest{NodeID: "n4", Address: "127.0.0.4:8088", NonVoter: true}, adminToken: adminToken{Token: "t"}},
		&RemoveBody{NodeID: "n2"},
		&TrustBody{NodeID: "n5", Line: "ssh-ed25519 AAAAC3Nza n5"},
		&DeployBody{Plugin: "ledger", Wasm: []byte{0, 'a', 's', 'm'}, Options: DeployOptions{Create: true, IfHash: "h"}},
		&DeployBody{Plugin: "ledger", Wasm: []byte{0, 'a', 's', 'm'}, Options: DeployOptions{IfHash: "*", Force: true, Trusted: true}},
		&RemovePluginBody{Plugin: "ledger", DropState: true},
		&SetLimitsBody{Plugin: "kv", IfHash: "h"},
		&QuarantineBody{Plugin: "kv", Reason: "fail-stop"},
		&AddressesBody{Addresses: fsm.MemberAddresses{NodeID: "n2", API: "http://127.0.0.1:8080", Mgmt: "127.0.0.1:6000"}},
		&DigestBody{Index: 7, Digests: []NamedDigest{{Name: ".sessions", State: "ab"}, {Name: "kv", State: "cd", Module: "ef"}, {Name: "x", Module: "12"}}},
	}
}

func responses() []Response {
	return []Response{
		{},
		{Data: []byte{0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x05}},
		{Code: abi.CodeNotFound},
		{Code: 1 << 31, Data: bytes.Repeat([]byte{2}, 70_000)},
		{ErrKind: 3, Err: "raftkv: timeout"},
		{ErrKind: -1, Err: string(bytes.Repeat([]byte{'e'}, 40))},
	}
}

// Every method of peerrpc has a request type, and each type says its method.
func TestRPCBodyRegistry(t *testing.T) {
	for _, m := range Methods() {
		mk, ok := bodies[m.Name]
		if !ok {
			t.Errorf("method %s has no request type", m.Name)
			continue
		}
		if got := mk().Method(); got != m {
			t.Errorf("%s's request type says method %s", m.Name, got.Name)
		}
	}
	if len(bodies) != len(Methods()) {
		t.Errorf("%d request types for %d methods", len(bodies), len(Methods()))
	}
}

// Each request decodes, as its method's type, to what was sent.
func TestRPCBodiesRoundTrip(t *testing.T) {
	for _, want := range requests() {
		b, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(want.Method().Name, b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decode(marshal(%+v)) = %+v, %v", want.Method().Name, want, got, err)
		}
	}
}

// The hand-written codecs (apply, query and every answer) speak the
// reflection codec's wire format, both ways.
func TestRPCCodecMatchesReflection(t *testing.T) {
	for _, want := range requests() {
		switch want.(type) {
		case *ApplyBody, *QueryBody:
		default:
			continue
		}
		mine, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		viaReflect := bodies[want.Method().Name]()
		if err := abi.Unmarshal(mine, viaReflect); err != nil || !reflect.DeepEqual(viaReflect, want) {
			t.Errorf("abi.Unmarshal(marshal(%+v)) = %+v, %v", want, viaReflect, err)
		}
		other, err := abi.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got := bodies[want.Method().Name]()
		if err := got.unmarshal(other); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("unmarshal(abi.Marshal(%+v)) = %+v, %v", want, got, err)
		}
	}
	for _, want := range responses() {
		mine := want.Marshal()
		var viaReflect Response
		if err := abi.Unmarshal(mine, &viaReflect); err != nil || !reflect.DeepEqual(viaReflect, want) {
			t.Errorf("abi.Unmarshal(marshal(%+v)) = %+v, %v", want, viaReflect, err)
		}
		other, err := abi.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		var got Response
		if err := got.Unmarshal(other); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("unmarshal(abi.Marshal(%+v)) = %+v, %v", want, got, err)
		}
	}
	results := ApplyResponse(responses())
	var got ApplyResponse
	if err := got.Unmarshal(results.Marshal()); err != nil || !reflect.DeepEqual(got, results) {
		t.Errorf("apply response: %+v, %v", got, err)
	}
}

// mapOf encodes a MsgPack map of string keys (values: string, []byte, int,
// bool, nil, or raw MsgPack as mp.Type-less []any{raw}).
func mapOf(kv ...any) []byte {
	b := mp.AppendMapHeader(nil, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		b = mp.AppendString(b, kv[i].(string))
		switch v := kv[i+1].(type) {
		case string:
			b = mp.AppendString(b, v)
		case []byte:
			b = mp.AppendBytes(b, v)
		case int:
			b = mp.AppendInt(b, int64(v))
		case bool:
			b = mp.AppendBool(b, v)
		case nil:
			b = mp.AppendNil(b)
		case raw:
			b = append(b, v...)
		}
	}
	return b
}

type raw []byte

func arrayOf(items ...[]byte) raw {
	b := mp.AppendArrayHeader(nil, len(items))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

// Bodies a method's type cannot hold are refused with fsm.ErrInvalid, naming
// the method and the fault.
func TestRPCBodiesRefused(t *testing.T) {
	cmd := mapOf("plugin", "kv", "key", "", "data", []byte("x"))
	good, _ := (&ApplyBody{Commands: []Command{{Plugin: "kv", Data: []byte("x")}}}).Marshal()
	many := make([][]byte, MaxBatch+1)
	for i := range many {
		many[i] = cmd
	}
	for _, c := range []struct {
		name, method string
		body         []byte
		why          string
	}{
		{"unknown method", "format-disk", mapOf(), "unknown method"},
		{"empty body", "ping", nil, "not a MsgPack map"},
		{"ping with a field", "ping", mapOf("drop", true), "unknown field"},
		{"status with a field of another method", "status", mapOf("plugin", "kv"), "unknown field"},
		{"apply: not a map", "apply", mp.AppendString(nil, "kv"), "malformed"},
		{"apply: truncated", "apply", good[:len(good)-1], "malformed"},
		{"apply: trailing bytes", "apply", append(append([]byte(nil), good...), 0xc0), "after the map"},
		{"apply: no commands", "apply", mapOf(), "no commands"},
		{"apply: empty batch", "apply", mapOf("commands", arrayOf()), "0 commands"},
		{"apply: batch too large", "apply", mapOf("commands", arrayOf(many...)), "1025 commands"},
		{"apply: unknown field", "apply", mapOf("commands", arrayOf(cmd), "level", 1), "unknown field"},
		{"apply: unknown command field", "apply", mapOf("commands", arrayOf(mapOf("plugin", "kv", "drop", true))), "unknown field"},
		{"apply: command without plugin", "apply", mapOf("commands", arrayOf(mapOf("data", []byte("x")))), "no plugin"},
		{"apply: wrong type", "apply", mapOf("commands", arrayOf(mapOf("plugin", 2))), "command 0"},
		{"apply: int key", "apply", mp.AppendUint(mp.AppendUint(mp.AppendMapHeader(nil, 1), 1), 2), "not a string"},
		{"query: level out of range", "query", mapOf("plugin", "kv", "level", 3), "unknown consistency"},
		{"query: invalid MsgPack", "query", []byte{0x81, 0xa4, 'd', 'a', 't', 'a', 0xc1}, "malformed"},
		{"query: no plugin", "query", mapOf("data", []byte("q")), "no plugin"},
		{"plugin-list: level out of range", "plugin-list", mapOf("level", 3), "unknown consistency"},
		{"plugin-list: a field of query", "plugin-list", mapOf("level", 1, "plugin", "kv"), "unknown field"},
		{"join: a field of the old shared body", "join", mapOf("join", raw(mapOf("id", "n4", "address", "a:1")), "drop", true), "unknown field"},
		{"join: unknown field inside", "join", mapOf("join", raw(mapOf("id", "n4", "address", "a:1", "admin", true))), "unknown field"},
		{"join: no node", "join", mapOf("join", raw(mapOf("address", "a:1"))), "without a node ID"},
		{"join: array, not map", "join", arrayOf(mapOf("id", "n4")), "not a MsgPack map"},
		{"remove: no node", "remove", mapOf("token", "t"), "node ID"},
		{"trust: no key", "trust", mapOf("id", "n5"), "without a key"},
		{"deploy: bad plugin name", "deploy", mapOf("plugin", "../x", "wasm", []byte{0}), "plugin"},
		{"deploy: the old body", "deploy", mapOf("plugin", "p", "data", []byte{0}), "unknown field"},
		{"set-limits: wrong type", "set-limits", mapOf("plugin", "kv", "patch", "all"), "malformed"},
		{"addresses: invalid node", "addresses", mapOf("addresses", raw(mapOf("id", ""))), "addresses"},
		{"huge array claim", "status", []byte{0x81, 0xa7, 'd', 'i', 'g', 'e', 's', 't', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}, "malformed"},
	} {
		req, err := Decode(c.method, c.body)
		if err == nil {
			t.Errorf("%s: %x decoded as %+v", c.name, c.body, req)
			continue
		}
		if !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), c.method) {
			t.Errorf("%s: %v; want fsm.ErrInvalid naming %s and %q", c.name, err, c.method, c.why)
		}
	}
	var resp Response
	if err := resp.Unmarshal(mp.AppendInt(mp.AppendString(mp.AppendMapHeader(nil, 1), "code"), -1)); err == nil {
		t.Errorf("negative code decoded as %+v", resp)
	}
}

// methodNames lists the methods in a fixed order (the fuzzer picks one by
// its first byte).
func methodNames() []string {
	var names []string
	for name := range bodies {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// FuzzRPCRequest: no body makes a method's decoder panic, and what one
// accepts encodes to a body it accepts again, encoding the same.
func FuzzRPCRequest(f *testing.F) {
	names := methodNames()
	for _, r := range requests() {
		b, _ := r.Marshal()
		f.Add(byte(sort.SearchStrings(names, r.Method().Name)), b)
	}
	f.Fuzz(func(t *testing.T, m byte, body []byte) {
		method := names[int(m)%len(names)]
		r, err := Decode(method, body)
		if err != nil {
			return
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(method, b)
		if err != nil {
			t.Fatalf("%s: re-decoding %x: %v", method, b, err)
		}
		b2, _ := again.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatalf("%s: round trip: %x, want %x", method, b2, b)
		}
	})
}

// BenchmarkRPCCodec: encoding and decoding a forwarded apply's request and
// its answer, as the follower and the leader do once each per call.
func BenchmarkRPCCodec(b *testing.B) {
	for _, batch := range []int{1, 32} {
		req := ApplyBody{Commands: make([]Command, batch)}
		res := make(ApplyResponse, batch)
		for i := range req.Commands {
			req.Commands[i] = Command{Plugin: "kv", Data: make([]byte, 140)}
			res[i] = Response{Data: []byte{0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0xcd, 0x12, 0x34}}
		}
		b.Run("commands="+string(rune('0'+batch/10))+string(rune('0'+batch%10)), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				body, _ := req.Marshal()
				var r ApplyBody
				if err := r.unmarshal(body); err != nil {
					b.Fatal(err)
				}
				env := Response{Data: res.Marshal()}
				var rs Response
				if err := rs.Unmarshal(env.Marshal()); err != nil {
					b.Fatal(err)
				}
				var results ApplyResponse
				if err := results.Unmarshal(rs.Data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch), "ns/command")
		})
	}
}

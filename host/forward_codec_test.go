package host

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk/mp"
)

func rpcRequests() []rpcRequest {
	return []rpcRequest{
		{},
		{Plugin: "kv", Data: []byte{0x83, 0xa2, 'o', 'p'}},
		{Plugin: "kv", Data: []byte("q"), Level: Linearizable},
		{Plugin: "kv", Data: []byte("q"), Level: Stale},
		{Join: &JoinRequest{NodeID: "n4", Address: "127.0.0.4:8088", PublicKey: "ssh-ed25519 AAAA n4"}},
		{NodeID: "n2"},
		{NodeID: "n5", Key: "ssh-ed25519 AAAAC3Nza n5"},
		{Plugin: "ledger", Drop: true},
		{Plugin: "big", Data: bytes.Repeat([]byte{7}, 70_000)}, // bin 32
		{Plugin: string(bytes.Repeat([]byte{'p'}, 300)), Data: bytes.Repeat([]byte{1}, 300)},
	}
}

func rpcResponses() []rpcResponse {
	return []rpcResponse{
		{},
		{Data: []byte{0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x05}},
		{Code: abi.CodeNotFound},
		{Code: 1 << 31, Data: bytes.Repeat([]byte{2}, 70_000)},
		{ErrKind: 3, Err: "raftkv: timeout"},
		{ErrKind: -1, Err: string(bytes.Repeat([]byte{'e'}, 40))},
	}
}

// The hand-written RPC codec speaks the reflection codec's wire format, both
// ways, so nodes of either kind understand each other.
func TestRPCCodecMatchesReflection(t *testing.T) {
	for _, want := range rpcRequests() {
		mine, err := want.marshal()
		if err != nil {
			t.Fatal(err)
		}
		var viaReflect rpcRequest
		if err := abi.Unmarshal(mine, &viaReflect); err != nil || !reflect.DeepEqual(viaReflect, want) {
			t.Errorf("abi.Unmarshal(marshal(%+v)) = %+v, %v", want, viaReflect, err)
		}
		old, err := abi.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		var got rpcRequest
		if err := got.unmarshal(old); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("unmarshal(abi.Marshal(%+v)) = %+v, %v", want, got, err)
		}
	}
	for _, want := range rpcResponses() {
		mine := want.marshal()
		var viaReflect rpcResponse
		if err := abi.Unmarshal(mine, &viaReflect); err != nil || !reflect.DeepEqual(viaReflect, want) {
			t.Errorf("abi.Unmarshal(marshal(%+v)) = %+v, %v", want, viaReflect, err)
		}
		old, err := abi.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		var got rpcResponse
		if err := got.unmarshal(old); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("unmarshal(abi.Marshal(%+v)) = %+v, %v", want, got, err)
		}
	}
}

func TestRPCCodecLenient(t *testing.T) {
	// Unknown keys are skipped and nil stands for an absent value.
	b := mp.AppendMapHeader(nil, 4)
	b = mp.AppendString(b, "future")
	b = mp.AppendArrayHeader(b, 2)
	b = mp.AppendString(mp.AppendUint(b, 1), "x")
	b = mp.AppendString(mp.AppendString(b, "plugin"), "kv")
	b = mp.AppendNil(mp.AppendString(b, "data"))
	b = mp.AppendNil(mp.AppendString(b, "join"))
	var req rpcRequest
	if err := req.unmarshal(b); err != nil || !reflect.DeepEqual(req, rpcRequest{Plugin: "kv"}) {
		t.Fatalf("got %+v, %v", req, err)
	}
}

func TestRPCCodecRejects(t *testing.T) {
	good, _ := (&rpcRequest{Plugin: "kv", Data: []byte("x")}).marshal()
	bad := map[string][]byte{
		"empty":        nil,
		"not a map":    mp.AppendString(nil, "kv"),
		"truncated":    good[:len(good)-1],
		"trailing":     append(append([]byte(nil), good...), 0xc0),
		"int key":      mp.AppendUint(mp.AppendUint(mp.AppendMapHeader(nil, 1), 1), 2),
		"wrong type":   mp.AppendUint(mp.AppendString(mp.AppendMapHeader(nil, 1), "plugin"), 2),
		"level range":  mp.AppendUint(mp.AppendString(mp.AppendMapHeader(nil, 1), "level"), 256),
		"invalid code": {0x81, 0xa4, 'd', 'r', 'o', 'p', 0xc1},
	}
	for name, body := range bad {
		var req rpcRequest
		if err := req.unmarshal(body); err == nil {
			t.Errorf("%s: request %x decoded as %+v", name, body, req)
		}
	}
	var resp rpcResponse
	if err := resp.unmarshal(mp.AppendInt(mp.AppendString(mp.AppendMapHeader(nil, 1), "code"), -1)); err == nil {
		t.Errorf("negative code decoded as %+v", resp)
	}
}

// FuzzRPCRequest: the decoder never panics, and what it accepts survives a
// round trip through the encoder.
func FuzzRPCRequest(f *testing.F) {
	for _, r := range rpcRequests() {
		b, _ := r.marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r rpcRequest
		if r.unmarshal(body) != nil {
			return
		}
		b, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		var again rpcRequest
		if err := again.unmarshal(b); err != nil {
			t.Fatalf("re-decoding %x: %v", b, err)
		}
		if len(r.Data) == 0 {
			r.Data = nil // the encoder leaves empty data out
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v, want %+v", again, r)
		}
	})
}

// BenchmarkRPCCodec: encoding and decoding a forwarded apply's request and
// its response, as the follower and the leader do once each per call, by
// hand and (for comparison) with the reflection-based codec.
func BenchmarkRPCCodec(b *testing.B) {
	req := rpcRequest{Plugin: "kv", Data: make([]byte, 140)}
	resp := rpcResponse{Data: []byte{0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0xcd, 0x12, 0x34}}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			body, _ := req.marshal()
			var r rpcRequest
			if err := r.unmarshal(body); err != nil {
				b.Fatal(err)
			}
			var rs rpcResponse
			if err := rs.unmarshal(resp.marshal()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			body, _ := abi.Marshal(&req)
			var r rpcRequest
			if err := abi.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
			raw, _ := abi.Marshal(&resp)
			var rs rpcResponse
			if err := abi.Unmarshal(raw, &rs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

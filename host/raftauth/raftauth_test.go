package raftauth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// peerConn is one end of a pipe that knows its peer.
type peerConn struct {
	net.Conn
	id string
}

func (p peerConn) PeerID() string { return p.id }

// encode writes reqs as NetworkTransport's sendRPC does: a type byte, the
// MsgPack request, and for InstallSnapshot the data.
func encode(t *testing.T, reqs ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := codec.NewEncoder(&b, &codec.MsgpackHandle{})
	for _, r := range reqs {
		var typ Type
		var data []byte
		switch r := r.(type) {
		case *raft.AppendEntriesRequest:
			typ = AppendEntries
		case *raft.RequestVoteRequest:
			typ = RequestVote
		case *raft.RequestPreVoteRequest:
			typ = RequestPreVote
		case *raft.TimeoutNowRequest:
			typ = TimeoutNow
		case *raft.InstallSnapshotRequest:
			typ = InstallSnapshot
			data = bytes.Repeat([]byte{0xc1}, max(int(r.Size), 0)) // never valid MsgPack: must pass unread
		}
		b.WriteByte(byte(typ))
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.Bytes()
}

// through feeds wire to a checked stream from peer and returns what it
// hands on.
func through(t *testing.T, peer string, auth func(string, Request) error, wire []byte) ([]byte, []Request) {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		a.Write(wire)
		a.Close()
	}()
	var seen []Request
	l := &Layer{cfg: Config{Authorize: func(p string, r Request) error {
		seen = append(seen, r)
		return auth(p, r)
	}}}
	l.log = discard
	c := newConn(peerConn{b, peer}, peer, l)
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return got, seen
}

func hdr(id, addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}
}

func TestPassesRequestsByteForByte(t *testing.T) {
	h := hdr("n1", "a1")
	cf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "a1"}}})
	wire := encode(t,
		&raft.AppendEntriesRequest{RPCHeader: h, Term: 3, Entries: []*raft.Log{
			{Index: 1, Term: 3, Data: bytes.Repeat([]byte("x"), 100<<10)},
			{Index: 2, Term: 3, Type: raft.LogConfiguration, Data: cf},
			{Index: 3, Term: 3, Type: raft.LogNoop},
		}},
		&raft.InstallSnapshotRequest{RPCHeader: h, Term: 3, Size: 200 << 10, Configuration: cf},
		&raft.RequestVoteRequest{RPCHeader: h, Term: 4},
		&raft.RequestPreVoteRequest{RPCHeader: h, Term: 4},
		&raft.TimeoutNowRequest{RPCHeader: h},
		&raft.AppendEntriesRequest{RPCHeader: h, Term: 4, Leader: []byte("a1")},
	)
	got, seen := through(t, "n1", func(string, Request) error { return nil }, wire)
	if !bytes.Equal(got, wire) {
		t.Fatalf("handed on %d bytes, want the %d sent", len(got), len(wire))
	}
	want := []Type{AppendEntries, InstallSnapshot, RequestVote, RequestPreVote, TimeoutNow, AppendEntries}
	if len(seen) != len(want) {
		t.Fatalf("authorized %d requests, want %d", len(seen), len(want))
	}
	for i, r := range seen {
		if r.Type != want[i] || r.ID != "n1" || r.Addr != "a1" {
			t.Errorf("request %d: %+v", i, r)
		}
	}
}

func TestRefusalEndsTheStream(t *testing.T) {
	ok := encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n2", "a2"), Term: 3})
	cf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "a1"}}})
	for name, bad := range map[string][]byte{
		"other ID":          encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n1", "a1"), Term: 9}),
		"no address":        encode(t, &raft.RequestVoteRequest{RPCHeader: hdr("n2", ""), Candidate: []byte("a1"), Term: 9}),
		"legacy address":    encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n2", "a2"), Leader: []byte("a1"), Term: 9}),
		"bad configuration": encode(t, &raft.InstallSnapshotRequest{RPCHeader: hdr("n2", "a2"), Term: 9}),
		"negative size":     encode(t, &raft.InstallSnapshotRequest{RPCHeader: hdr("n2", "a2"), Term: 9, Size: -1, Configuration: cf}),
		"unknown type":      {9, 0x80},
		"bad configuration entry": encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n2", "a2"), Term: 9, Entries: []*raft.Log{
			{Index: 1, Term: 9, Data: []byte{0xc1}}, {Index: 2, Term: 9, Type: raft.LogConfiguration, Data: []byte{0xc1}},
		}}),
		"configuration entry without a voter": encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n2", "a2"), Term: 9, Entries: []*raft.Log{
			{Index: 1, Term: 9, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{
				Servers: []raft.Server{{Suffrage: raft.Nonvoter, ID: "n1", Address: "a1"}}})},
		}}),
		"configuration entry with a server twice": encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n2", "a2"), Term: 9, Entries: []*raft.Log{
			{Index: 1, Term: 9, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{
				Servers: []raft.Server{{ID: "n1", Address: "a1"}, {ID: "n1", Address: "a2"}}})},
		}}),
		"deprecated peer entry": encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n2", "a2"), Term: 9, Entries: []*raft.Log{
			{Index: 1, Term: 9, Type: raft.LogRemovePeerDeprecated, Data: []byte{0x90}},
		}}),
		"unknown entry type": encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n2", "a2"), Term: 9, Entries: []*raft.Log{
			{Index: 1, Term: 9, Type: 99},
		}}),
		"entries not an array": {0, 0x82, 0xa2, 'I', 'D', 0xa2, 'n', '2', 0xa7, 'E', 'n', 't', 'r', 'i', 'e', 's', 0x01},
		"not MsgPack":          {0, 0xc1, 0xc1},
		"authorizer says no":   encode(t, &raft.TimeoutNowRequest{RPCHeader: hdr("n2", "deny")}),
	} {
		t.Run(name, func(t *testing.T) {
			wire := append(append(append([]byte{}, ok...), bad...), ok...)
			got, _ := through(t, "n2", func(_ string, r Request) error {
				if r.Addr == "deny" {
					return errors.New("no")
				}
				return nil
			}, wire)
			if !bytes.Equal(got, ok) {
				t.Fatalf("handed on %d bytes, want only the %d of the first request", len(got), len(ok))
			}
		})
	}
}

// TestAdmitBeforeBuffering: a peer that Admit refuses cannot make the node
// buffer its request: the stream is closed after the type byte, while the
// peer is still sending (net.Pipe: each byte written is a byte read).
func TestAdmitBeforeBuffering(t *testing.T) {
	wire := encode(t, &raft.AppendEntriesRequest{RPCHeader: hdr("n9", "a9"), Term: 9, Entries: []*raft.Log{
		{Index: 1, Term: 9, Data: bytes.Repeat([]byte("x"), 16<<20)},
	}})
	a, b := net.Pipe()
	sent := make(chan int, 1)
	go func() {
		n := 0
		for n < len(wire) {
			m, err := a.Write(wire[n:min(n+4096, len(wire))])
			n += m
			if err != nil {
				break
			}
		}
		a.Close()
		sent <- n
	}()
	var admitted []string
	l := &Layer{cfg: Config{
		Admit: func(p string, typ Type) error {
			admitted = append(admitted, fmt.Sprintf("%s %v", p, typ))
			return errors.New("not a member")
		},
		Authorize: func(string, Request) error { return errors.New("not a member") },
	}}
	l.log = discard
	c := newConn(peerConn{b, "n9"}, "n9", l)
	if got, err := io.ReadAll(c); err != nil || len(got) > 0 {
		t.Fatalf("handed on %d bytes, %v", len(got), err)
	}
	b.Close()
	if n := <-sent; n > 1<<20 {
		t.Errorf("the node read %d bytes of a refused peer's %d-byte request before refusing it", n, len(wire))
	}
	if len(admitted) != 1 || admitted[0] != "n9 AppendEntries" {
		t.Errorf("Admit asked %q", admitted)
	}
}

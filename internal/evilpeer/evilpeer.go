// Package evilpeer is an adversarial peer for tests: it connects to a raftkv
// node over the real SSH transport as a given node ID with a given key, and
// sends whatever Raft or forwarding RPC the test builds, with whatever
// header it likes.
//
// It plays an attacker who holds one node's key (stolen, or a member turned
// hostile): the SSH handshake only lets it in under the ID that key is
// trusted for, but everything after the handshake is its choice. Raft RPCs
// go through a raft.NetworkTransport of its own, so they are encoded exactly
// as a real node encodes them; forwarding RPCs go through transport.Call with
// any method name and body.
package evilpeer

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
)

// Config says whom to pose as and whom to attack.
type Config struct {
	// As is the node ID the peer logs in with (the SSH user).
	As string
	// Key is the key it proves; the target must trust it for As.
	Key ssh.Signer
	// BindIP is the loopback address its connections come from.
	BindIP string
	// Target is the attacked node's Raft (SSH) address, TargetID its ID and
	// TargetKey its host key (checked, as a real node would).
	Target, TargetID string
	TargetKey        ssh.PublicKey
}

// Peer is a connection-maker posing as Config.As.
type Peer struct {
	cfg Config
	tr  *transport.Transport
	nt  *raft.NetworkTransport
}

// New starts the peer. Nothing is dialled until the first RPC.
func New(cfg Config) (*Peer, error) {
	trusted := &trust.Trust{}
	if err := trusted.Add(cfg.TargetID, cfg.TargetKey); err != nil {
		return nil, fmt.Errorf("evilpeer: %w", err)
	}
	tr, err := transport.New(transport.Config{
		NodeID: cfg.As, BindAddr: cfg.BindIP + ":0", Signer: cfg.Key, Trust: trusted,
		DialTimeout: 5 * time.Second,
		Resolve:     func(a string) (string, bool) { return cfg.TargetID, a == cfg.Target },
	})
	if err != nil {
		return nil, fmt.Errorf("evilpeer: %w", err)
	}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: tr, MaxPool: 1, Timeout: 5 * time.Second,
	})
	return &Peer{cfg: cfg, tr: tr, nt: nt}, nil
}

// Close closes every connection of the peer.
func (p *Peer) Close() error {
	err := p.nt.Close() // closes tr too
	p.tr.Close()
	return err
}

func (p *Peer) target() (raft.ServerID, raft.ServerAddress) {
	return raft.ServerID(p.cfg.TargetID), raft.ServerAddress(p.cfg.Target)
}

// AppendEntries sends req as is (its RPCHeader is the caller's).
func (p *Peer) AppendEntries(req *raft.AppendEntriesRequest) (*raft.AppendEntriesResponse, error) {
	id, addr := p.target()
	var resp raft.AppendEntriesResponse
	err := p.nt.AppendEntries(id, addr, req, &resp)
	return &resp, err
}

// RequestVote sends req as is.
func (p *Peer) RequestVote(req *raft.RequestVoteRequest) (*raft.RequestVoteResponse, error) {
	id, addr := p.target()
	var resp raft.RequestVoteResponse
	err := p.nt.RequestVote(id, addr, req, &resp)
	return &resp, err
}

// InstallSnapshot sends req followed by req.Size bytes of data.
func (p *Peer) InstallSnapshot(req *raft.InstallSnapshotRequest, data io.Reader) (*raft.InstallSnapshotResponse, error) {
	id, addr := p.target()
	var resp raft.InstallSnapshotResponse
	err := p.nt.InstallSnapshot(id, addr, req, &resp, data)
	return &resp, err
}

// TimeoutNow sends req as is.
func (p *Peer) TimeoutNow(req *raft.TimeoutNowRequest) (*raft.TimeoutNowResponse, error) {
	id, addr := p.target()
	var resp raft.TimeoutNowResponse
	err := p.nt.TimeoutNow(id, addr, req, &resp)
	return &resp, err
}

// Call sends a forwarding RPC: method and body as given.
func (p *Peer) Call(ctx context.Context, method string, body []byte) ([]byte, error) {
	return p.tr.Call(ctx, p.cfg.Target, method, body)
}

// Header returns an RPCHeader claiming to come from node id at addr.
func Header(id, addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}
}

// Package raftauth binds the Raft identity a peer claims to the identity it
// proved over SSH.
//
// hashicorp/raft believes the RPCHeader of a request: an AppendEntries whose
// header says "node n1, term 9" makes a follower take n1 as its leader and
// append what it sends. The SSH handshake proves which node's key a
// connection holds, but raft.NetworkTransport never sees the connection's
// identity, so a node holding any trusted key could pose as the leader, as a
// candidate, or as any other member.
//
// Layer wraps the raft.StreamLayer that NetworkTransport reads from. Each
// accepted stream knows the node ID its peer proved (Peer). Before a request
// reaches NetworkTransport, the stream decodes it in the wire format
// NetworkTransport uses (one byte of RPC type, then the request as a
// MsgPack map; an InstallSnapshot request is followed by Size bytes of
// snapshot) far enough to read its header, and asks Authorize whether that
// peer may send it (and, before it reads more than the type byte, Admit
// whether the peer may send Raft requests at all, so that a peer that may
// not cannot make the node buffer a request), and whether Raft can take it without panicking (the
// type of every log entry, configuration entries decoded: CheckEntry; a
// snapshot's configuration: CheckConfiguration). A request that passes is
// handed on byte for byte; one that does not closes the stream: Raft sees
// the connection end before the request, and never acts on it.
//
// Why here and not elsewhere: the consumer channel of NetworkTransport
// carries no connection identity, and it is not even the only path (a
// heartbeat is answered by a fast-path function without going through it);
// a raft.Transport of our own would mean re-implementing NetworkTransport's
// pipelining and connection pool. A stream wrapper sees every request, knows
// its connection, and leaves Raft and NetworkTransport untouched.
package raftauth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/hashicorp/raft"
)

// Type is a Raft RPC type as NetworkTransport numbers it on the wire.
type Type uint8

// The RPC types of hashicorp/raft's net_transport.go.
const (
	AppendEntries   Type = 0
	RequestVote     Type = 1
	InstallSnapshot Type = 2
	TimeoutNow      Type = 3
	RequestPreVote  Type = 4
)

func (t Type) String() string {
	switch t {
	case AppendEntries:
		return "AppendEntries"
	case RequestVote:
		return "RequestVote"
	case InstallSnapshot:
		return "InstallSnapshot"
	case TimeoutNow:
		return "TimeoutNow"
	case RequestPreVote:
		return "RequestPreVote"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Request is what Authorize is told of a request.
type Request struct {
	Type Type
	// ID and Addr are the sender's node ID and address as its RPCHeader
	// claims them.
	ID, Addr string
	// Legacy is the sender address of the pre-header field (Leader of
	// AppendEntries and InstallSnapshot, Candidate of RequestVote), which
	// Raft uses when Addr is empty.
	Legacy string
}

// Peer is implemented by the streams the inner StreamLayer accepts.
type Peer interface {
	// PeerID returns the node ID the peer proved in the SSH handshake.
	PeerID() string
}

// Config configures a Layer.
type Config struct {
	// Admit, if set, decides whether peer, the node ID proven over SSH, may
	// send a request of type typ at all, before anything of the request
	// but its type byte is read: a request is buffered whole before
	// Authorize sees its header (MsgPack does not order a map's keys), so a
	// peer refused here cannot make the node buffer what it sends.
	Admit func(peer string, typ Type) error
	// Authorize decides whether peer, the node ID proven over SSH, may send
	// req. CheckHeader has already passed.
	Authorize func(peer string, req Request) error
	// Refused is called once per refused request (a metric); may be nil.
	Refused func()
	// Logger receives a WARN line per refusal; nil discards.
	Logger *slog.Logger
}

// Layer is a raft.StreamLayer whose accepted streams are checked.
type Layer struct {
	raft.StreamLayer
	cfg Config
	log *slog.Logger
}

var discard = slog.New(slog.DiscardHandler)

// Wrap returns inner with every accepted stream checked by cfg.
func Wrap(inner raft.StreamLayer, cfg Config) *Layer {
	log := cfg.Logger
	if log == nil {
		log = discard
	}
	return &Layer{StreamLayer: inner, cfg: cfg, log: log}
}

// Accept returns the next stream, checked.
func (l *Layer) Accept() (net.Conn, error) {
	c, err := l.StreamLayer.Accept()
	if err != nil {
		return nil, err
	}
	p, ok := c.(Peer)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("raftauth: stream %T does not know its peer", c)
	}
	return newConn(c, p.PeerID(), l), nil
}

// errRefused records a refusal; Read then reports io.EOF, as for a peer
// that hung up (the refusal itself is logged here, with its reason).
var errRefused = errors.New("raftauth: request refused")

// CheckHeader refuses a request whose header does not name peer, or whose
// addresses disagree (Raft would use the one the check did not see).
func CheckHeader(peer string, req Request) error {
	switch {
	case req.ID != peer:
		return fmt.Errorf("header claims node %q", req.ID)
	case req.Addr == "":
		return errors.New("header has no address")
	case req.Legacy != "" && req.Legacy != req.Addr:
		return fmt.Errorf("header address %q and legacy address %q differ", req.Addr, req.Legacy)
	}
	return nil
}

// CheckEntry refuses a log entry that would crash Raft: a configuration
// that does not decode (DecodeConfiguration panics, when a follower appends
// the entry, when it applies it, and at every restart once it is stored), or
// that Raft's own checks would never have let a leader write; an entry type
// Raft does not know (it panics when the entry commits); and the
// configuration entries of Raft's protocol versions before 3, which raftkv
// never writes. Command, no-op and barrier entries pass unread. Which
// configuration a voter proposes is Raft's business: it trusts the leader
// of a term, and the sender is a voter that may be that leader.
func CheckEntry(typ raft.LogType, data []byte) error {
	switch typ {
	case raft.LogCommand, raft.LogNoop, raft.LogBarrier:
		return nil
	case raft.LogConfiguration:
		if err := CheckConfiguration(data); err != nil {
			return fmt.Errorf("configuration entry: %w", err)
		}
		return nil
	case raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated:
		return fmt.Errorf("configuration entry of type %v: raftkv runs Raft protocol version 3, which never writes one", typ)
	}
	return fmt.Errorf("entry of unknown type %d", uint8(typ))
}

// CheckConfiguration decodes a configuration with Raft's own decoder and
// checks it as Raft checks the configurations it writes: every server has an
// ID and an address, neither repeated, a known suffrage, and at least one
// is a voter.
func CheckConfiguration(data []byte) (err error) {
	var cf raft.Configuration
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("does not decode: %v", r)
			}
		}()
		cf = raft.DecodeConfiguration(data)
	}()
	if err != nil {
		return err
	}
	ids := make(map[raft.ServerID]bool, len(cf.Servers))
	addrs := make(map[raft.ServerAddress]bool, len(cf.Servers))
	voters := 0
	for _, s := range cf.Servers {
		switch {
		case s.ID == "":
			return errors.New("a server without an ID")
		case s.Address == "":
			return fmt.Errorf("server %q without an address", s.ID)
		case ids[s.ID]:
			return fmt.Errorf("server ID %q twice", s.ID)
		case addrs[s.Address]:
			return fmt.Errorf("server address %q twice", s.Address)
		case s.Suffrage < raft.Voter || s.Suffrage > raft.Staging:
			return fmt.Errorf("server %q of unknown suffrage %d", s.ID, s.Suffrage)
		}
		ids[s.ID], addrs[s.Address] = true, true
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters == 0 {
		return errors.New("no voter")
	}
	return nil
}

// conn is an accepted stream that hands NetworkTransport only the requests
// Authorize passed.
type conn struct {
	net.Conn
	peer string
	l    *Layer

	mu    sync.Mutex // Read
	in    *bufio.Reader
	rd    reader // reads one request from in
	out   []byte // checked bytes not yet read
	spare []byte // the other buffer: out's and rd.buf's swap
	raw   int64  // snapshot bytes still to pass through unchecked
	err   error  // sticky
}

func newConn(c net.Conn, peer string, l *Layer) *conn {
	cc := &conn{Conn: c, peer: peer, l: l, in: bufio.NewReaderSize(c, 64<<10)}
	cc.rd.br = cc.in
	return cc
}

// header is the part of every request the check needs; every other field
// is skipped.
type header struct {
	ID, Addr      []byte
	Leader        []byte
	Candidate     []byte
	Size          int64
	Configuration []byte
	Entries       []entry // AppendEntries: those to check (see reader.entries)
}

func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) == 0 && c.raw == 0 && c.err == nil {
		c.err = c.next()
	}
	switch {
	case len(c.out) > 0:
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	case c.raw > 0:
		if int64(len(p)) > c.raw {
			p = p[:c.raw]
		}
		n, err := c.in.Read(p)
		c.raw -= int64(n)
		return n, err
	}
	if errors.Is(c.err, errRefused) {
		return 0, io.EOF
	}
	return 0, c.err
}

// next reads, decodes and checks the next request into c.out.
func (c *conn) next() error {
	typ, err := c.in.ReadByte()
	if err != nil {
		return err
	}
	c.rd.buf = append(c.rd.buf[:0], typ)
	req := Request{Type: Type(typ)}
	var h header
	if req.Type > RequestPreVote {
		return c.refuse(req, fmt.Errorf("unknown RPC type %d", typ))
	}
	if c.l.cfg.Admit != nil {
		if err := c.l.cfg.Admit(c.peer, req.Type); err != nil {
			return c.refuse(req, err)
		}
	}
	if err := c.rd.header(&h, 0); err != nil {
		return c.refuse(req, fmt.Errorf("undecodable %v request: %v", req.Type, err))
	}
	req.ID, req.Addr = string(h.ID), string(h.Addr)
	switch req.Type {
	case AppendEntries, InstallSnapshot:
		req.Legacy = string(h.Leader)
	case RequestVote:
		req.Legacy = string(h.Candidate)
	}
	err = CheckHeader(c.peer, req)
	if err == nil {
		err = c.l.cfg.Authorize(c.peer, req)
	}
	if err != nil {
		return c.refuse(req, err)
	}
	for _, e := range h.Entries {
		if err := CheckEntry(raft.LogType(e.typ), c.rd.buf[e.start:e.end]); err != nil {
			return c.refuse(req, err)
		}
	}
	if req.Type == InstallSnapshot {
		if err := CheckConfiguration(h.Configuration); err != nil {
			return c.refuse(req, fmt.Errorf("snapshot configuration: %w", err))
		}
		if h.Size < 0 {
			return c.refuse(req, fmt.Errorf("snapshot size %d", h.Size))
		}
		c.raw = h.Size
	}
	c.out, c.spare, c.rd.buf = c.rd.buf, c.rd.buf, c.spare[:0]
	return nil
}

func (c *conn) refuse(req Request, why error) error {
	c.l.log.Warn("raftauth: refused a Raft RPC; closing the connection",
		"peer", c.peer, "claimed_id", req.ID, "claimed_addr", req.Addr, "rpc", req.Type.String(),
		"remote", c.RemoteAddr().String(), "reason", why.Error())
	if c.l.cfg.Refused != nil {
		c.l.cfg.Refused()
	}
	c.Conn.Close()
	return errRefused
}

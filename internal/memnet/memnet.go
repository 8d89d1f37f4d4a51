// Package memnet is an in-memory stream network for tests: named hosts
// listen on and dial addresses such as "n1:7000", and the connections behave
// enough like TCP for SSH and raft to run over them unchanged (it is what
// internal/cluster gives the real SSH transport through
// transport.Config.Network).
//
// Like TCP, and unlike net.Pipe, a connection is buffered in each direction
// (up to BufferSize bytes), so a writer does not wait for the reader. Read,
// Write and their deadlines behave as on a TCP connection: a deadline in the
// past fails pending and future calls with an error wrapping
// os.ErrDeadlineExceeded, Close wakes blocked calls on both ends, the peer
// reads what was written and then io.EOF. Dialling an address nobody listens
// on, or a listener that is closed, fails with an error wrapping
// syscall.ECONNREFUSED. golang.org/x/net/nettest.TestConn passes.
//
// Faults: Partition cuts every connection between two hosts and refuses
// dials between them, Isolate does so between one host and every other, and
// Heal lets hosts connect again (cut connections stay cut, as behind a
// firewall that dropped them). A cut connection fails reads and writes on
// both ends with an error wrapping syscall.ECONNRESET.
//
// The package starts no goroutines; deadlines are timers.
package memnet

import (
	"github.com/raftkv/raftkv/internal/deadline"

	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// BufferSize is how many bytes a connection holds in each direction before
// Write blocks until the peer reads.
const BufferSize = 512 << 10

// backlog is how many connections a listener holds before Accept takes
// them; a dial to a full listener is refused.
const backlog = 512

// firstPort is the first port Listen assigns for port 0, and for the local
// end of dialled connections.
const firstPort = 40000

// Addr is an address of the network, "host:port".
type Addr string

// Network reports "memnet".
func (Addr) Network() string  { return "memnet" }
func (a Addr) String() string { return string(a) }

// Network is one in-memory network. The zero value is not usable; call New.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*listener // by address
	links     map[*link]struct{}   // open connections
	cut       map[[2]string]bool   // partitioned host pairs, the lesser first
	isolated  map[string]bool
	nextPort  int
}

// New returns an empty network.
func New() *Network {
	return &Network{
		listeners: make(map[string]*listener),
		links:     make(map[*link]struct{}),
		cut:       make(map[[2]string]bool),
		isolated:  make(map[string]bool),
		nextPort:  firstPort,
	}
}

// Host returns the host called name: it listens on addresses whose host is
// name, and its dials come from name (which Partition and Isolate go by). It
// implements transport.Network.
func (n *Network) Host(name string) *Host { return &Host{net: n, name: name} }

// Host is a host of a Network (see Network.Host).
type Host struct {
	net  *Network
	name string
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// Listen listens on addr, whose host must be h's name; port 0 picks a free
// port.
func (h *Host) Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "memnet", Err: err}
	}
	if host != h.name {
		return nil, &net.OpError{Op: "listen", Net: "memnet", Addr: Addr(addr),
			Err: fmt.Errorf("host %q cannot listen on another host's address", h.name)}
	}
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if port == "0" {
		addr = net.JoinHostPort(host, strconv.Itoa(n.port()))
	}
	if _, ok := n.listeners[addr]; ok {
		return nil, &net.OpError{Op: "listen", Net: "memnet", Addr: Addr(addr), Err: syscall.EADDRINUSE}
	}
	l := &listener{net: n, addr: Addr(addr), pending: make(chan *Conn, backlog), done: make(chan struct{})}
	n.listeners[addr] = l
	return l, nil
}

// port returns a port not handed out before; n.mu is held.
func (n *Network) port() int {
	n.nextPort++
	return n.nextPort
}

// Dial connects to addr.
func (h *Host) Dial(addr string) (net.Conn, error) {
	return h.DialContext(context.Background(), addr)
}

// DialContext connects to addr. It fails with an error wrapping
// syscall.ECONNREFUSED when nothing listens there, the listener's backlog is
// full, or h and addr's host are partitioned.
func (h *Host) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	refused := func(err error) error {
		return &net.OpError{Op: "dial", Net: "memnet", Addr: Addr(addr), Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, refused(err)
	}
	dst, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, refused(err)
	}
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.listeners[addr]
	if l == nil || n.blocked(h.name, dst) {
		return nil, refused(syscall.ECONNREFUSED)
	}
	local := Addr(net.JoinHostPort(h.name, strconv.Itoa(n.port())))
	lk := &link{net: n, src: h.name, dst: dst}
	ab, ba := newBuffer(), newBuffer()
	lk.ends[0] = newConn(lk, local, l.addr, ba, ab)
	lk.ends[1] = newConn(lk, l.addr, local, ab, ba)
	select {
	case l.pending <- lk.ends[1]:
	default:
		return nil, refused(syscall.ECONNREFUSED)
	}
	n.links[lk] = struct{}{}
	return lk.ends[0], nil
}

// pair returns the key of the host pair a, b in cut.
func pair(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// blocked reports whether a and b may not talk; n.mu is held.
func (n *Network) blocked(a, b string) bool {
	return a != b && (n.isolated[a] || n.isolated[b] || n.cut[pair(a, b)])
}

// Partition cuts every connection between hosts a and b and refuses dials
// between them until Heal.
func (n *Network) Partition(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[pair(a, b)] = true
	n.cutLocked()
}

// Isolate cuts every connection between host a and any other host and
// refuses dials between them until Heal.
func (n *Network) Isolate(a string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[a] = true
	n.cutLocked()
}

// Heal removes every partition. Connections that were cut stay cut.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	clear(n.isolated)
}

// cutLocked resets every connection that is now blocked; n.mu is held.
func (n *Network) cutLocked() {
	for lk := range n.links {
		if n.blocked(lk.src, lk.dst) {
			lk.reset()
			delete(n.links, lk)
		}
	}
	// Connections not yet accepted are in n.links too, so they were reset
	// above; Accept hands them out and they fail at once, as a connection
	// reset while in a TCP backlog does.
}

// Conns returns how many connections are open: dialled, and not yet closed
// at both ends or cut.
func (n *Network) Conns() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.links)
}

// listener is a net.Listener of a Network.
type listener struct {
	net     *Network
	addr    Addr
	pending chan *Conn
	done    chan struct{}
	once    sync.Once
}

func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "memnet", Addr: l.addr, Err: net.ErrClosed}
	default:
	}
	select {
	case c := <-l.pending:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "memnet", Addr: l.addr, Err: net.ErrClosed}
	}
}

// Close stops listening: later dials are refused, and connections dialled
// but not accepted are reset.
func (l *listener) Close() error {
	err := error(&net.OpError{Op: "close", Net: "memnet", Addr: l.addr, Err: net.ErrClosed})
	l.once.Do(func() {
		err = nil
		n := l.net
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.listeners, string(l.addr))
		close(l.done)
		// Dials happen under n.mu, so nothing is added to pending now.
		for {
			select {
			case c := <-l.pending:
				c.link.reset()
				delete(n.links, c.link)
			default:
				return
			}
		}
	})
	return err
}

// link is one connection: its dialling end and its accepted end.
type link struct {
	net      *Network
	src, dst string   // hosts of the dialling and the listening end
	ends     [2]*Conn // dialling end, accepted end
	closed   int      // ends closed; n.mu guards it
}

// reset cuts the connection: both ends fail from now on.
func (lk *link) reset() {
	for _, c := range lk.ends {
		c.rx.update(func(b *buffer) { b.reset = true })
	}
}

// endClosed records that one end was closed.
func (lk *link) endClosed() {
	n := lk.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if lk.closed++; lk.closed == 2 {
		delete(n.links, lk)
	}
}

// buffer is one direction of a connection.
type buffer struct {
	mu         sync.Mutex
	data       []byte
	eof        bool          // the writing end closed: reads drain, then io.EOF
	readerGone bool          // the reading end closed: writes fail
	reset      bool          // the connection was cut
	wake       chan struct{} // closed (and replaced) on every change
}

func newBuffer() *buffer { return &buffer{wake: make(chan struct{})} }

// update changes b under its lock and wakes everyone waiting on it.
func (b *buffer) update(f func(*buffer)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
	b.signal()
}

// signal wakes everyone waiting on b; b.mu is held.
func (b *buffer) signal() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// Conn is one end of a connection. It is a net.Conn.
type Conn struct {
	link          *link
	local, remote Addr
	rx, tx        *buffer // what this end reads; what it writes (the peer's rx)
	rmu, wmu      sync.Mutex
	rd, wd        *deadline.Deadline
	done          chan struct{} // closed by Close
	once          sync.Once
}

func newConn(lk *link, local, remote Addr, rx, tx *buffer) *Conn {
	return &Conn{link: lk, local: local, remote: remote, rx: rx, tx: tx,
		rd: deadline.New(), wd: deadline.New(), done: make(chan struct{})}
}

func (c *Conn) LocalAddr() net.Addr  { return c.local }
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "memnet", Source: c.local, Addr: c.remote, Err: err}
}

// stopped returns the error that ends a call waiting on d, if any.
func (c *Conn) stopped(op string, d *deadline.Deadline) error {
	select {
	case <-c.done:
		return c.opError(op, net.ErrClosed)
	default:
	}
	select {
	case <-d.Wait():
		return c.opError(op, os.ErrDeadlineExceeded)
	default:
	}
	return nil
}

// Read reads what the peer wrote; after the peer closed and everything was
// read, it returns io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	b := c.rx
	for {
		if err := c.stopped("read", c.rd); err != nil {
			return 0, err
		}
		b.mu.Lock()
		switch {
		case b.reset:
			b.mu.Unlock()
			return 0, c.opError("read", syscall.ECONNRESET)
		case len(p) == 0:
			b.mu.Unlock()
			return 0, nil
		case len(b.data) > 0:
			n := copy(p, b.data)
			b.data = b.data[n:]
			if len(b.data) == 0 {
				b.data = nil
			}
			b.signal()
			b.mu.Unlock()
			return n, nil
		case b.eof:
			b.mu.Unlock()
			return 0, io.EOF
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-c.done:
		case <-c.rd.Wait():
		}
	}
}

// Write writes p for the peer to read, waiting while the buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.tx
	written := 0
	for {
		if err := c.stopped("write", c.wd); err != nil {
			return written, err
		}
		b.mu.Lock()
		switch {
		case b.reset:
			b.mu.Unlock()
			return written, c.opError("write", syscall.ECONNRESET)
		case b.readerGone:
			b.mu.Unlock()
			return written, c.opError("write", syscall.EPIPE)
		case len(p) == 0:
			b.mu.Unlock()
			return written, nil
		}
		if room := BufferSize - len(b.data); room > 0 {
			k := min(room, len(p))
			b.data = append(b.data, p[:k]...)
			p = p[k:]
			written += k
			b.signal()
			if len(p) == 0 {
				b.mu.Unlock()
				return written, nil
			}
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-c.done:
		case <-c.wd.Wait():
		}
	}
}

// Close closes this end: its blocked and later calls fail with
// net.ErrClosed, the peer reads what was written and then io.EOF, and the
// peer's writes fail.
func (c *Conn) Close() error {
	err := c.opError("close", net.ErrClosed)
	c.once.Do(func() {
		err = nil
		close(c.done)
		c.rx.update(func(b *buffer) { b.readerGone = true; b.data = nil })
		c.tx.update(func(b *buffer) { b.eof = true })
		c.link.endClosed()
	})
	return err
}

func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.Set(t)
	return nil
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", net.ErrClosed)
	}
	c.wd.Set(t)
	return nil
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

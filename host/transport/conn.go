package transport

import (
	"github.com/raftkv/raftkv/internal/deadline"

	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// Buffer sizes of a stream. The SSH channel itself buffers up to its window
// (2 MiB in x/crypto/ssh); these add a bounded read-ahead and a write chunk.
const (
	readChunk  = 32 << 10 // one SSH packet; two of them are in flight
	writeChunk = 64 << 10
)

// chanConn is a net.Conn over one SSH channel, with working deadlines.
//
// An ssh.Channel has no deadlines and a blocked Read or Write cannot be
// interrupted without closing the channel, so each chanConn runs two pump
// goroutines that own the blocking channel calls:
//
//   - the read pump reads into one of two buffers and hands it to Read; Read
//     waits for a buffer, the read deadline or Close, whichever comes first,
//     so a timed-out Read leaves the stream intact and a later Read gets the
//     data;
//   - the write pump writes chunks that Write copied into its buffer; Write
//     returns once its last chunk is written, or with a timeout error when
//     the deadline passes first. A chunk that was handed over before the
//     deadline may still be sent after Write has returned the error (as with
//     a TCP send buffer); Write never counts it in n. The write pump also
//     answers channel requests, which must be drained for the SSH connection
//     to make progress.
//
// Both pumps end when the channel closes, the chanConn is closed or the
// Transport closes.
type chanConn struct {
	ch            ssh.Channel
	peer          string // the node ID the peer proved (accepted raft streams)
	local, remote net.Addr
	done          <-chan struct{} // Transport shutdown

	closeOnce sync.Once
	closed    chan struct{}

	// read side
	rmu      sync.Mutex
	rcur     []byte // buffer being drained by Read
	rpos     int
	rerr     error // sticky: io.EOF or the channel's error
	readc    chan readResult
	rfree    chan []byte
	peerDone atomic.Bool // the read pump saw EOF or an error
	rdl      *deadline.Deadline

	// write side
	wmu    sync.Mutex
	wbuf   []byte
	writec chan []byte
	wdone  chan error
	wbusy  bool  // a chunk is with the write pump
	werr   error // sticky
	wdl    *deadline.Deadline
}

type readResult struct {
	buf []byte
	err error
}

// newChanConn wraps ch and starts its pumps with start (the Transport's
// goroutine helper). It closes ch and returns ErrClosed if start refuses.
func newChanConn(ch ssh.Channel, reqs <-chan *ssh.Request, local, remote net.Addr, done <-chan struct{}, start func(func()) bool) (*chanConn, error) {
	c := &chanConn{
		ch:     ch,
		local:  local,
		remote: remote,
		done:   done,
		closed: make(chan struct{}),
		readc:  make(chan readResult),
		rfree:  make(chan []byte, 2),
		writec: make(chan []byte, 1),
		wdone:  make(chan error, 1),
		rdl:    deadline.New(),
		wdl:    deadline.New(),
	}
	c.rfree <- make([]byte, readChunk)
	c.rfree <- make([]byte, readChunk)
	if !start(c.readLoop) {
		ch.Close()
		return nil, ErrClosed
	}
	if !start(func() { c.writeLoop(reqs) }) {
		c.Close()
		return nil, ErrClosed
	}
	return c, nil
}

func (c *chanConn) readLoop() {
	for {
		var buf []byte
		select {
		case buf = <-c.rfree:
		case <-c.closed:
			return
		case <-c.done:
			return
		}
		n, err := c.ch.Read(buf[:cap(buf)])
		if err != nil {
			c.peerDone.Store(true)
		}
		select {
		case c.readc <- readResult{buf: buf[:n], err: err}:
		case <-c.closed:
			return
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *chanConn) writeLoop(reqs <-chan *ssh.Request) {
	for {
		select {
		case b := <-c.writec:
			_, err := c.ch.Write(b)
			c.wdone <- err
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		case <-c.closed:
			return
		case <-c.done:
			return
		}
	}
}

// Read implements net.Conn.
func (c *chanConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	// Like a TCP conn, a passed deadline fails a Read even when data waits.
	if err := c.check("read", c.rdl); err != nil {
		return 0, err
	}
	for c.rpos == len(c.rcur) {
		if c.rerr != nil {
			return 0, c.rerr
		}
		select {
		case r := <-c.readc:
			if r.err != nil {
				c.rerr = r.err
				if !errors.Is(r.err, io.EOF) {
					c.rerr = opError("read", c, r.err)
				}
			}
			if len(r.buf) == 0 {
				if r.err == nil {
					c.rfree <- r.buf
				}
				continue
			}
			c.rcur, c.rpos = r.buf, 0
		case <-c.rdl.Wait():
			return 0, opError("read", c, os.ErrDeadlineExceeded)
		case <-c.closed:
			return 0, opError("read", c, net.ErrClosed)
		case <-c.done:
			return 0, opError("read", c, net.ErrClosed)
		}
	}
	n := copy(p, c.rcur[c.rpos:])
	c.rpos += n
	if c.rpos == len(c.rcur) && c.rerr == nil {
		c.rfree <- c.rcur[:0] // never blocks: there are two buffers and rfree holds two
		c.rcur, c.rpos = nil, 0
	}
	return n, nil
}

// Write implements net.Conn.
func (c *chanConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, pending := 0, 0 // pending: bytes of p now with the write pump
	for {
		if c.wbusy {
			select {
			case err := <-c.wdone:
				c.wbusy = false
				if err != nil {
					c.werr = opError("write", c, err)
				} else {
					n += pending
				}
				pending = 0
			case <-c.wdl.Wait():
				return n, opError("write", c, os.ErrDeadlineExceeded)
			case <-c.closed:
				return n, opError("write", c, net.ErrClosed)
			case <-c.done:
				return n, opError("write", c, net.ErrClosed)
			}
		}
		if c.werr != nil {
			return n, c.werr
		}
		if len(p) == 0 {
			return n, nil
		}
		if err := c.check("write", c.wdl); err != nil {
			return n, err
		}
		if c.wbuf == nil {
			c.wbuf = make([]byte, writeChunk)
		}
		k := copy(c.wbuf, p)
		p = p[k:]
		c.writec <- c.wbuf[:k] // never blocks: the pump is idle and writec holds one
		c.wbusy, pending = true, k
	}
}

// check returns the error for an operation that must not start: the conn is
// closed or the deadline has passed.
func (c *chanConn) check(op string, d *deadline.Deadline) error {
	select {
	case <-c.closed:
		return opError(op, c, net.ErrClosed)
	case <-c.done:
		return opError(op, c, net.ErrClosed)
	case <-d.Wait():
		return opError(op, c, os.ErrDeadlineExceeded)
	default:
		return nil
	}
}

// Close closes the SSH channel; pending Reads and Writes return at once.
// Data from completed Writes is delivered before the close.
func (c *chanConn) Close() error {
	err := opError("close", c, net.ErrClosed)
	c.closeOnce.Do(func() {
		close(c.closed)
		c.rdl.Set(time.Time{})
		c.wdl.Set(time.Time{})
		err = c.ch.Close()
		if errors.Is(err, io.EOF) { // the peer closed first
			err = nil
		}
	})
	return err
}

// peerClosed reports whether the peer has closed the channel (or the
// connection died) as far as the read pump has seen.
func (c *chanConn) peerClosed() bool { return c.peerDone.Load() }

// PeerID returns the node ID the peer of an accepted raft stream proved in
// the SSH handshake ("" on a dialled stream).
func (c *chanConn) PeerID() string { return c.peer }

func (c *chanConn) LocalAddr() net.Addr  { return c.local }
func (c *chanConn) RemoteAddr() net.Addr { return c.remote }

func (c *chanConn) SetDeadline(t time.Time) error {
	c.rdl.Set(t)
	c.wdl.Set(t)
	return nil
}

func (c *chanConn) SetReadDeadline(t time.Time) error {
	c.rdl.Set(t)
	return nil
}

func (c *chanConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Set(t)
	return nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"golang.org/x/crypto/ssh"
)

// RPCHandler serves one Call from a peer. peerID is the node ID the peer
// proved in the SSH handshake (not anything it claims in the request). ctx
// ends when the caller's deadline passes or the Transport closes. A non-nil
// error is returned to the caller as a *RemoteError carrying its message.
// Handlers run concurrently, one per RPC channel.
type RPCHandler func(ctx context.Context, peerID string, method string, req []byte) ([]byte, error)

// Limits of an RPC.
const (
	// MaxMessageSize bounds an RPC request or response body.
	MaxMessageSize = 64 << 20
	// MaxMethodLen bounds an RPC method name.
	MaxMethodLen = 256
)

// rpcIdlePerPeer is how many idle RPC channels are kept per peer
// connection for reuse.
const rpcIdlePerPeer = 8

// Wire format of an RPC channel: a sequence of exchanges, each a request
// frame from the dialling node followed by a response frame.
//
//	request:  u32 body length | u64 timeout in ns (0: none) | u16 method length | method | body
//	response: u32 body length | u8 status | body
//
// Integers are big-endian. Status 0 means the body is the handler's result,
// status 1 means it is the handler's error message.
const (
	reqHeaderLen  = 4 + 8 + 2
	respHeaderLen = 4 + 1

	statusOK    = 0
	statusError = 1

	// smallMessage: below this a frame is written with one Write and a body
	// is read into a buffer allocated at once; above it the body is written
	// separately and read into a buffer that grows as data arrives, so a
	// peer cannot make us allocate more than it sends.
	smallMessage = 1 << 20
)

// Call sends req to method on the node at addr and returns the response
// of that node's RPCHandler. It travels on an SSH channel of the connection
// raft uses (dialled if needed, with the same host key check) and reuses an
// idle RPC channel when there is one.
//
// A handler error comes back as a *RemoteError. When ctx ends first, Call
// returns an error wrapping ctx.Err(). The caller's deadline is passed to
// the remote handler's context; a handler error that arrives once the
// deadline has passed wraps both context.DeadlineExceeded and the
// *RemoteError. Call never retries: after a connection or timeout error the
// request may or may not have been handled, and only the caller can know
// whether sending it again is safe.
func (t *Transport) Call(ctx context.Context, addr, method string, req []byte) ([]byte, error) {
	if len(method) > MaxMethodLen {
		return nil, fmt.Errorf("transport: call %.32s… on %s: %w: method name of %d bytes (max %d)", method, addr, ErrMessageTooLarge, len(method), MaxMethodLen)
	}
	if len(req) > MaxMessageSize {
		return nil, fmt.Errorf("transport: call %s on %s: %w: request of %d bytes (max %d)", method, addr, ErrMessageTooLarge, len(req), MaxMessageSize)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transport: call %s on %s: %w", method, addr, err)
	}
	sc, c, err := t.open(ctx, addr, chanRPC)
	if err != nil {
		return nil, fmt.Errorf("transport: call %s on %s: %w", method, addr, err)
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), 1)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	resp, status, err := roundTrip(c, timeout, method, req)
	switch {
	case !stop(): // ctx ended during the call; c has or gets a past deadline
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("transport: call %s on %s: %w", method, addr, ctx.Err())
		}
	case err != nil:
		c.Close()
		return nil, fmt.Errorf("transport: call %s on %s: %w", method, addr, err)
	default:
		putIdle(sc, c)
	}
	if status == statusError {
		remote := &RemoteError{Message: string(resp)}
		// The handler's context carries the caller's deadline, so a handler
		// may fail on it just before the caller's own context ends: report
		// both.
		if err := ctxDone(ctx); err != nil {
			return nil, fmt.Errorf("transport: call %s on %s: %w (%w)", method, addr, err, remote)
		}
		return nil, remote
	}
	return resp, nil
}

// ctxDone returns ctx.Err(), or context.DeadlineExceeded when ctx's
// deadline has passed but its timer has not fired yet.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

func roundTrip(c *chanConn, timeout time.Duration, method string, req []byte) (resp []byte, status byte, err error) {
	if err := writeRequest(c, timeout, method, req); err != nil {
		return nil, 0, err
	}
	return readResponse(c)
}

func writeRequest(w io.Writer, timeout time.Duration, method string, body []byte) error {
	hlen := reqHeaderLen + len(method)
	n := hlen
	if len(body) < smallMessage {
		n += len(body)
	}
	buf := make([]byte, n)
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	binary.BigEndian.PutUint64(buf[4:], uint64(max(timeout, 0)))
	binary.BigEndian.PutUint16(buf[12:], uint16(len(method)))
	copy(buf[reqHeaderLen:], method)
	if len(body) < smallMessage {
		copy(buf[hlen:], body)
		_, err := w.Write(buf)
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// readRequest reads one request frame. io.EOF means the peer closed the
// channel between requests.
func readRequest(r io.Reader) (method string, timeout time.Duration, body []byte, err error) {
	var h [reqHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", 0, nil, err
	}
	size := binary.BigEndian.Uint32(h[:])
	timeout = time.Duration(min(binary.BigEndian.Uint64(h[4:]), uint64(1<<63-1)))
	mlen := binary.BigEndian.Uint16(h[12:])
	if mlen > MaxMethodLen {
		return "", 0, nil, fmt.Errorf("%w: method name of %d bytes (max %d)", ErrMessageTooLarge, mlen, MaxMethodLen)
	}
	if size > MaxMessageSize {
		return "", 0, nil, fmt.Errorf("%w: request of %d bytes (max %d)", ErrMessageTooLarge, size, MaxMessageSize)
	}
	m := make([]byte, mlen)
	if _, err := io.ReadFull(r, m); err != nil {
		return "", 0, nil, unexpectedEOF(err)
	}
	body, err = readBody(r, size)
	if err != nil {
		return "", 0, nil, err
	}
	return string(m), timeout, body, nil
}

func writeResponse(w io.Writer, status byte, body []byte) error {
	n := respHeaderLen
	if len(body) < smallMessage {
		n += len(body)
	}
	buf := make([]byte, n)
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	buf[4] = status
	if len(body) < smallMessage {
		copy(buf[respHeaderLen:], body)
		_, err := w.Write(buf)
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

func readResponse(r io.Reader) (body []byte, status byte, err error) {
	var h [respHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, 0, unexpectedEOF(err)
	}
	size := binary.BigEndian.Uint32(h[:])
	status = h[4]
	if status != statusOK && status != statusError {
		return nil, 0, fmt.Errorf("%w: response status %d", ErrProtocol, status)
	}
	if size > MaxMessageSize {
		return nil, 0, fmt.Errorf("%w: response of %d bytes (max %d)", ErrMessageTooLarge, size, MaxMessageSize)
	}
	body, err = readBody(r, size)
	return body, status, err
}

// readBody reads a body of size bytes, size already checked against
// MaxMessageSize.
func readBody(r io.Reader, size uint32) ([]byte, error) {
	if size < smallMessage {
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, unexpectedEOF(err)
		}
		return body, nil
	}
	var b bytes.Buffer
	b.Grow(smallMessage)
	if _, err := io.CopyN(&b, r, int64(size)); err != nil {
		return nil, unexpectedEOF(err)
	}
	return b.Bytes(), nil
}

// unexpectedEOF turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// serveRPC serves the request/response exchanges of one RPC channel until
// the caller closes it.
func (t *Transport) serveRPC(sc *sshConn, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	if !t.goFunc(func() { ssh.DiscardRequests(reqs) }) {
		return
	}
	r := bufio.NewReaderSize(ch, 16<<10)
	for {
		method, timeout, req, err := readRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && t.ctx.Err() == nil {
				t.log.Warn("transport: bad RPC request; closing channel", logPeer, sc.nodeID, logErr, err)
			}
			return
		}
		resp, herr := t.handle(sc.nodeID, method, timeout, req)
		status := byte(statusOK)
		switch {
		case herr != nil:
			status, resp = statusError, []byte(herr.Error())
		case len(resp) > MaxMessageSize:
			status, resp = statusError, fmt.Appendf(nil, "%v: response of %d bytes (max %d)", ErrMessageTooLarge, len(resp), MaxMessageSize)
		}
		if len(resp) > MaxMessageSize { // an enormous error message
			resp = resp[:MaxMessageSize]
		}
		if err := writeResponse(ch, status, resp); err != nil {
			return
		}
	}
}

// handle runs the RPCHandler for one request, turning a panic into an error.
func (t *Transport) handle(peerID, method string, timeout time.Duration, req []byte) (resp []byte, err error) {
	if t.cfg.RPCHandler == nil {
		return nil, fmt.Errorf("node %q serves no RPCs", t.cfg.NodeID)
	}
	ctx := t.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			t.log.Error("transport: RPC handler panicked", logPeer, peerID, logMethod, method, logPanic, p, logStack, string(debug.Stack()))
			resp, err = nil, fmt.Errorf("RPC handler for %q panicked: %v", method, p)
		}
	}()
	return t.cfg.RPCHandler(ctx, peerID, method, req)
}

func takeIdle(sc *sshConn) *chanConn {
	for {
		select {
		case c := <-sc.idle:
			if c.peerClosed() {
				c.Close()
				continue
			}
			return c
		default:
			return nil
		}
	}
}

func putIdle(sc *sshConn, c *chanConn) {
	if sc.isDead() || c.peerClosed() {
		c.Close()
		return
	}
	select {
	case sc.idle <- c:
	default:
		c.Close()
		return
	}
	if sc.isDead() { // raced with serveConn's drainIdle
		drainIdle(sc)
	}
}

func drainIdle(sc *sshConn) {
	for {
		select {
		case c := <-sc.idle:
			c.Close()
		default:
			return
		}
	}
}

package main

// The measurement loop of raftkv-bench talks HTTP/1.1 through this small
// keep-alive client instead of net/http.
//
// Why: bench runs on the machine it measures, taking its CPU from the nodes.
// Profiled there, net/http's client cost about 70 µs of CPU per request with
// one client (the persistConn read and write loops hand every request between
// goroutines, with futex wakeups, and allocate a Request, a Response and
// their headers each time) — as much as the server's own work for a stale GET.
// This client writes a request with one Write of pre-formatted bytes and
// parses the answer in the calling goroutine, in the wrk style: no goroutine
// and no allocation per request in steady state. Against one local node
// (--op get --consistency stale, 2 cores) the client's CPU per request went
// from 70 to 20-25 µs with --clients 1 and from 22 to 10 µs with
// --clients 64; what is left is mostly the read and write system calls.
//
// What it supports, and nothing more: http:// and https:// (tls.Client with
// the --ca-cert configuration of the other commands), HTTP/1.1 keep-alive,
// answers with Content-Length, Transfer-Encoding: chunked or a body up to the
// end of the connection, and Connection: close. Anything else in an answer is
// a benchMalformedError; after any error the connection is closed and
// redialled on its next use. Each request has a deadline (--timeout) set on
// the connection; cancelling the pool's context sets a past deadline on every
// connection, so requests in flight return at once.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchMaxBody bounds an answer's body (values are at most 1 MiB).
const benchMaxBody = 64 << 20

// benchPool is the keep-alive connections to one node, shared by the workers
// that send to it.
type benchPool struct {
	base    string // scheme://host:port[/path], for messages
	addr    string // host:port to dial
	header  []byte // "Host: …\r\n" and "Authorization: Bearer …\r\n"
	prefix  string // path prefix of base
	tls     *tls.Config
	timeout time.Duration
	ctx     context.Context
	free    chan *benchConn
	stop    func() bool // stops the cancellation hook

	mu    sync.Mutex // guards benchConn.nc changes against interrupt
	conns []*benchConn
}

// benchConn is one connection; it belongs to one worker between get and put.
type benchConn struct {
	p    *benchPool
	nc   net.Conn // nil: dial on next use
	br   *bufio.Reader
	wbuf []byte
	body []byte
}

// benchMalformedError is an answer this client cannot parse.
type benchMalformedError struct{ msg string }

func (e *benchMalformedError) Error() string { return "malformed answer: " + e.msg }

func malformed(format string, args ...any) error {
	return &benchMalformedError{fmt.Sprintf(format, args...)}
}

// newBenchPool returns a pool of n connections (dialled when first used) to
// base, a URL as client.base. tlsConf is for https:// (nil: system roots).
// Cancelling ctx interrupts every request; close releases the connections.
func newBenchPool(ctx context.Context, base, token string, tlsConf *tls.Config, n int, timeout time.Duration) (*benchPool, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("address %q: want http://host:port or https://host:port", base)
	}
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("--token must not contain a line break")
	}
	p := &benchPool{base: base, addr: u.Host, prefix: strings.TrimSuffix(u.Path, "/"), timeout: timeout, ctx: ctx, free: make(chan *benchConn, n)}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		p.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		p.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsConf != nil {
			p.tls = tlsConf.Clone()
		}
		if p.tls.ServerName == "" {
			p.tls.ServerName = u.Hostname()
		}
	}
	p.header = fmt.Appendf(nil, "Host: %s\r\n", u.Host)
	if token != "" {
		p.header = fmt.Appendf(p.header, "Authorization: Bearer %s\r\n", token)
	}
	for range n {
		c := &benchConn{p: p, wbuf: make([]byte, 0, 512), body: make([]byte, 0, 4096)}
		p.conns = append(p.conns, c)
		p.free <- c
	}
	p.stop = context.AfterFunc(ctx, p.interrupt)
	return p, nil
}

// interrupt makes every request in flight fail now.
func (p *benchPool) interrupt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if c.nc != nil {
			c.nc.SetDeadline(time.Unix(1, 0))
		}
	}
}

// close closes every connection; the pool must not be used afterwards.
func (p *benchPool) close() {
	p.stop()
	for _, c := range p.conns {
		c.closeConn()
	}
}

// get waits for a free connection; nil when ctx is done.
func (p *benchPool) get() *benchConn {
	if p.ctx.Err() != nil {
		return nil
	}
	select {
	case c := <-p.free:
		return c
	case <-p.ctx.Done():
		return nil
	}
}

func (p *benchPool) put(c *benchConn) { p.free <- c }

func (c *benchConn) closeConn() {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// dial connects (and does the TLS handshake) before deadline.
func (c *benchConn) dial(deadline time.Time) error {
	p := c.p
	d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(p.ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	if p.tls != nil {
		tc := tls.Client(nc, p.tls)
		hctx, cancel := context.WithDeadline(p.ctx, deadline)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return err
		}
		nc = tc
	}
	p.mu.Lock()
	c.nc = nc
	p.mu.Unlock()
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// roundTrip sends method target (a path and query, after the pool's prefix)
// with body (nil: none) and returns the status and body of the answer. The
// body is valid until the connection is used again. Errors are prefixed
// `METHOD "url": `, as net/http's.
func (c *benchConn) roundTrip(method string, target, body []byte) (int, []byte, error) {
	status, b, err := c.exchange(method, target, body)
	if err != nil {
		c.closeConn()
		return 0, nil, fmt.Errorf("%s %q: %w", method, c.p.base+string(target), err)
	}
	return status, b, nil
}

func (c *benchConn) exchange(method string, target, body []byte) (int, []byte, error) {
	p := c.p
	var deadline time.Time
	if p.timeout > 0 {
		deadline = time.Now().Add(p.timeout)
	}
	if c.nc == nil {
		if err := c.dial(deadline); err != nil {
			return 0, nil, err
		}
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	if err := p.ctx.Err(); err != nil { // after SetDeadline: interrupt cannot be undone
		return 0, nil, err
	}
	w := append(c.wbuf[:0], method...)
	w = append(w, ' ')
	w = append(w, p.prefix...)
	w = append(w, target...)
	w = append(w, " HTTP/1.1\r\n"...)
	w = append(w, p.header...)
	if body != nil {
		w = append(w, "Content-Type: application/octet-stream\r\nContent-Length: "...)
		w = strconv.AppendInt(w, int64(len(body)), 10)
		w = append(w, "\r\n"...)
	}
	w = append(w, "\r\n"...)
	w = append(w, body...)
	c.wbuf = w
	if _, werr := c.nc.Write(w); werr != nil {
		// The server may have answered (say 413) and closed before reading
		// the whole body: its answer is the better report.
		status, b, err := c.readResponse()
		if err != nil {
			return 0, nil, werr
		}
		c.closeConn()
		return status, b, nil
	}
	return c.readResponse()
}

// readResponse parses the status line, headers and body of one answer.
func (c *benchConn) readResponse() (int, []byte, error) {
	line, err := c.readLine()
	if err != nil {
		return 0, nil, err
	}
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	status, ok := parseDecimal(code)
	if !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(proto) != 8 || !ok || len(code) != 3 || status < 100 {
		return 0, nil, malformed("status line %q", line)
	}
	if status < 200 {
		return 0, nil, malformed("%q: informational answers are not supported", line)
	}
	closing := proto[7] == '0' // HTTP/1.0 closes unless asked not to; bench never asks
	length, chunked := int64(-1), false
	for n := 0; ; n++ {
		line, err := c.readLine()
		if err != nil {
			return 0, nil, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || n >= 100 {
			return 0, nil, malformed("header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, ok := parseDecimal(value)
			if !ok || (length >= 0 && v != length) {
				return 0, nil, malformed("Content-Length %q", value)
			}
			length = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, nil, malformed("Transfer-Encoding %q (only chunked is supported)", value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case status == 204 || status == 304:
	case chunked:
		err = c.readChunked()
	case length >= 0:
		err = c.readBody(length)
	default: // the body ends with the connection
		closing = true
		err = c.readToEOF()
	}
	if err != nil {
		return 0, nil, err
	}
	if closing {
		c.closeConn()
	}
	return int(status), c.body, nil
}

// readLine returns the next line without its CRLF (or LF).
func (c *benchConn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, malformed("line longer than %d bytes: %.40q…", c.br.Size(), line)
	case err == io.EOF && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

// readBody appends n bytes of body.
func (c *benchConn) readBody(n int64) error {
	if int64(len(c.body))+n > benchMaxBody {
		return malformed("body of over %d bytes", benchMaxBody)
	}
	c.body = growCap(c.body, int(n))
	got, err := io.ReadFull(c.br, c.body[len(c.body):len(c.body)+int(n)])
	c.body = c.body[:len(c.body)+got]
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readToEOF appends the rest of the connection to the body.
func (c *benchConn) readToEOF() error {
	for {
		if len(c.body) >= benchMaxBody {
			return malformed("body of over %d bytes", benchMaxBody)
		}
		c.body = growCap(c.body, 4096)
		n, err := c.br.Read(c.body[len(c.body):cap(c.body)])
		c.body = c.body[:len(c.body)+n]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readChunked appends a chunked body, skipping extensions and trailers.
func (c *benchConn) readChunked() error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return malformed("chunk size line %q", line)
		}
		if n == 0 {
			break
		}
		if err := c.readBody(n); err != nil {
			return err
		}
		switch line, err := c.readLine(); {
		case err != nil:
			return err
		case len(line) != 0:
			return malformed("%q after a chunk, want CRLF", line)
		}
	}
	for { // trailers, up to the empty line
		line, err := c.readLine()
		if err != nil || len(line) == 0 {
			return err
		}
	}
}

// growCap makes room for n more bytes in b.
func growCap(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		b = append(b[:cap(b)], make([]byte, n)...)[:len(b)]
	}
	return b
}

// parseDecimal parses a non-negative decimal number of at most 18 digits.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + int64(ch-'0')
	}
	return v, true
}

// Package faultproxy is a TCP proxy for fault-injection tests: it forwards
// connections to a target and can cut them, per source IP or entirely, to
// simulate network partitions between processes on one machine, or hold what
// a source sends until it is released, to simulate a slow link. Nodes under
// test bind distinct 127.0.0.x addresses (the transport dials from its bind
// IP), so the proxy in front of a node can tell its peers apart.
package faultproxy

import (
	"bytes"
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from its listen address to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	blocked map[string]bool          // source IPs refused ("*" = everyone)
	held    map[string]chan struct{} // source IPs held, each closed on Release
	conns   map[net.Conn]string
	wg      sync.WaitGroup
	closed  bool
}

// New listens on addr and forwards to target.
func New(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, blocked: map[string]bool{}, held: map[string]chan struct{}{}, conns: map[net.Conn]string{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr returns the proxy's listen address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Block refuses new connections from ip ("*" for everyone) and cuts the
// existing ones.
func (p *Proxy) Block(ip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked[ip] = true
	for c, src := range p.conns {
		if ip == "*" || src == ip {
			c.Close()
		}
	}
}

// Unblock lets ip ("*" for everyone) connect again.
func (p *Proxy) Unblock(ip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.blocked, ip)
}

// Hold holds what ip sends through the proxy, in connections open and new,
// until Release: the bytes are read and kept, not forwarded. A connection
// whose sender closes it while its bytes are held is reset, and what was
// held is lost, as the kernel does when a socket is closed with data it
// has not read (an RST, which discards what the send queue holds).
func (p *Proxy) Hold(ip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held[ip] == nil {
		p.held[ip] = make(chan struct{})
	}
}

// Release forwards what Hold held from ip, in order, and stops holding.
func (p *Proxy) Release(ip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch := p.held[ip]; ch != nil {
		close(ch)
		delete(p.held, ip)
	}
}

// holding returns a channel closed when src is released, or nil when src
// is not held.
func (p *Proxy) holding(src string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[src]
}

// Heal removes every block.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.blocked)
}

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		src, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		p.mu.Lock()
		if p.closed || p.blocked["*"] || p.blocked[src] {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = src
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(c, src)
	}
}

func (p *Proxy) pipe(c net.Conn, src string) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	if p.closed || p.blocked["*"] || p.blocked[src] {
		p.mu.Unlock()
		up.Close()
		p.drop(c)
		return
	}
	p.conns[up] = src
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.forward(up, c, src); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
	p.drop(c)
	p.drop(up)
}

// forward copies what src sends on c to up, holding it while src is held
// (Hold), and closes up when c ends.
func (p *Proxy) forward(up, c net.Conn, src string) {
	chunks := make(chan []byte, 64)
	reset := make(chan struct{}) // closed when c ends while src is held
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				chunks <- bytes.Clone(buf[:n])
			}
			if err != nil {
				if p.holding(src) != nil {
					close(reset)
				}
				return
			}
		}
	}()
	defer func() {
		for range chunks { // let the reader end
		}
	}()
	for chunk := range chunks {
		for released := p.holding(src); released != nil; released = p.holding(src) {
			select {
			case <-released:
			case <-reset:
				if tc, ok := up.(*net.TCPConn); ok {
					tc.SetLinger(0) // close with an RST
				}
				up.Close()
				return
			}
		}
		if _, err := up.Write(chunk); err != nil {
			up.Close()
			return
		}
	}
	up.Close()
}

func (p *Proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Package faultproxy is a TCP proxy for fault-injection tests: it forwards
// connections to a target and can cut them, per source IP or entirely, to
// simulate network partitions between processes on one machine. Nodes under
// test bind distinct 127.0.0.x addresses (the transport dials from its bind
// IP), so the proxy in front of a node can tell its peers apart.
package faultproxy

import (
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from its listen address to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	blocked map[string]bool // source IPs refused ("*" = everyone)
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
	p := &Proxy{ln: ln, target: target, blocked: map[string]bool{}, conns: map[net.Conn]string{}}
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
	go func() { io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
	p.drop(c)
	p.drop(up)
}

func (p *Proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

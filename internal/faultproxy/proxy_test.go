package faultproxy

import (
	"io"
	"net"
	"testing"
	"time"
)

// echoTarget accepts one connection and sends what it reads on got.
func echoTarget(t *testing.T) (addr string, got chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	return ln.Addr().String(), got
}

// heldConn returns a connection through a proxy that holds what 127.0.0.1
// sends, the proxy, and the channel of what its target got.
func heldConn(t *testing.T) (net.Conn, *Proxy, chan []byte) {
	t.Helper()
	target, got := echoTarget(t)
	p, err := New("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Hold("127.0.0.1")
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return c, p, got
}

// TestHoldRelease: held bytes arrive, in order, once released.
func TestHoldRelease(t *testing.T) {
	c, p, got := heldConn(t)
	c.Write([]byte("one "))
	c.Write([]byte("two"))
	select {
	case b := <-got:
		t.Fatalf("the target got %q while held", b)
	case <-time.After(100 * time.Millisecond):
	}
	p.Release("127.0.0.1")
	c.(*net.TCPConn).CloseWrite()
	if b := <-got; string(b) != "one two" {
		t.Fatalf("the target got %q, want %q", b, "one two")
	}
	c.Close()
}

// TestHoldThenClose: a sender that closes while its bytes are held resets
// the connection; the target gets none of them.
func TestHoldThenClose(t *testing.T) {
	c, _, got := heldConn(t)
	c.Write([]byte("lost"))
	time.Sleep(50 * time.Millisecond) // the proxy reads it
	c.Close()
	if b := <-got; len(b) != 0 {
		t.Fatalf("the target got %q from a connection reset while held", b)
	}
}

package memnet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/nettest"

	"github.com/raftkv/raftkv/internal/memnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipe returns a connection from host "b" to a listener of host "a": the
// dialled end and the accepted end.
func pipe(t testing.TB, n *memnet.Network) (dialled, accepted net.Conn, ln net.Listener) {
	t.Helper()
	ln, err := n.Host("a").Listen("a:0")
	if err != nil {
		t.Fatal(err)
	}
	dialled, err = n.Host("b").Dial(ln.Addr().String())
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	accepted, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return dialled, accepted, ln
}

// TestConn runs the net.Conn conformance suite: deadlines, Close waking
// blocked calls, concurrent use.
func TestConn(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		n := memnet.New()
		d, a, ln := pipe(t, n)
		return d, a, func() { d.Close(); a.Close(); ln.Close() }, nil
	})
}

func TestAddresses(t *testing.T) {
	n := memnet.New()
	ln, err := n.Host("n1").Listen("n1:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != "n1:7000" {
		t.Fatalf("listener address %q", got)
	}
	if _, err := n.Host("n1").Listen("n1:7000"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second listener on n1:7000: %v, want EADDRINUSE", err)
	}
	if _, err := n.Host("n2").Listen("n1:7001"); err == nil {
		t.Fatal("n2 listened on an address of n1")
	}
	c, err := n.Host("n2").Dial("n1:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.LocalAddr().String() != "n1:7000" || s.RemoteAddr().String() != c.LocalAddr().String() ||
		c.RemoteAddr().String() != "n1:7000" {
		t.Fatalf("addresses: dialled %v->%v, accepted %v->%v", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}
	if h, _, _ := net.SplitHostPort(c.LocalAddr().String()); h != "n2" {
		t.Fatalf("dialled end's local address %v is not on n2", c.LocalAddr())
	}
}

func TestRefused(t *testing.T) {
	n := memnet.New()
	if _, err := n.Host("b").Dial("a:1"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial with no listener: %v, want ECONNREFUSED", err)
	}
	d, a, ln := pipe(t, n)
	defer d.Close()
	defer a.Close()
	ln.Close()
	if _, err := n.Host("b").Dial(ln.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed listener: %v, want ECONNREFUSED", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Host("b").DialContext(ctx, "a:1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial with a cancelled context: %v", err)
	}
}

// TestBuffered: a writer does not wait for the reader until BufferSize bytes
// are pending; the reader gets them, then io.EOF once the writer closed.
func TestBuffered(t *testing.T) {
	n := memnet.New()
	d, a, ln := pipe(t, n)
	defer ln.Close()
	defer a.Close()
	msg := bytes.Repeat([]byte("0123456789abcdef"), memnet.BufferSize/16)
	d.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if n, err := d.Write(msg); n != len(msg) || err != nil {
		t.Fatalf("write of BufferSize bytes with nobody reading: %d, %v", n, err)
	}
	d.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := d.Write([]byte("x")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a full buffer: %d, %v; want a timeout", n, err)
	}
	d.Close()
	got, err := io.ReadAll(a)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes, %v; want %d bytes, then EOF", len(got), err, len(msg))
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("write to a closed peer succeeded")
	}
	if n.Conns() != 1 {
		t.Fatalf("Conns() = %d with one end open", n.Conns())
	}
	a.Close()
	if n.Conns() != 0 {
		t.Fatalf("Conns() = %d after both ends closed", n.Conns())
	}
}

// TestPartition: Partition cuts the connections between two hosts, waking
// blocked reads on both ends, and refuses dials between them in both
// directions; other hosts are unaffected; Heal lets them connect again.
func TestPartition(t *testing.T) {
	n := memnet.New()
	d, a, ln := pipe(t, n) // b -> a
	defer ln.Close()
	defer d.Close()
	defer a.Close()
	lnB, err := n.Host("b").Listen("b:9")
	if err != nil {
		t.Fatal(err)
	}
	defer lnB.Close()
	lnC, err := n.Host("c").Listen("c:9")
	if err != nil {
		t.Fatal(err)
	}
	defer lnC.Close()
	other, err := n.Host("a").Dial("c:9")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	errs := make(chan error, 2)
	for _, c := range []net.Conn{d, a} {
		go func() {
			_, err := c.Read(make([]byte, 1))
			errs <- err
		}()
	}
	time.Sleep(10 * time.Millisecond) // let the reads block
	n.Partition("a", "b")
	for range 2 {
		if err := <-errs; !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("blocked read on a cut connection: %v, want ECONNRESET", err)
		}
	}
	if _, err := d.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write on a cut connection: %v, want ECONNRESET", err)
	}
	if _, err := n.Host("b").Dial(ln.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial b -> a across the partition: %v", err)
	}
	if _, err := n.Host("a").Dial("b:9"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a -> b across the partition: %v", err)
	}
	if _, err := other.Write([]byte("x")); err != nil {
		t.Fatalf("a -> c, not partitioned, was cut: %v", err)
	}
	n.Heal()
	c, err := n.Host("b").Dial(ln.Addr().String())
	if err != nil {
		t.Fatalf("dial after Heal: %v", err)
	}
	c.Close()
}

// TestIsolate: Isolate cuts every connection of a host, in both directions,
// including those still in a listener's backlog.
func TestIsolate(t *testing.T) {
	n := memnet.New()
	d, a, ln := pipe(t, n) // b -> a
	defer ln.Close()
	defer d.Close()
	defer a.Close()
	queued, err := n.Host("c").Dial(ln.Addr().String()) // not accepted yet
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	n.Isolate("a")
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read on b's connection to isolated a: %v", err)
	}
	if _, err := queued.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read on c's queued connection to isolated a: %v", err)
	}
	for _, from := range []string{"b", "c"} {
		if _, err := n.Host(from).Dial(ln.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s -> isolated a: %v", from, err)
		}
	}
	if n.Conns() != 0 {
		t.Fatalf("Conns() = %d after isolating the only listener's host", n.Conns())
	}
}

// TestCloseWakes: Close wakes a Read and a Write blocked on the same end.
func TestCloseWakes(t *testing.T) {
	n := memnet.New()
	d, a, ln := pipe(t, n)
	defer ln.Close()
	defer a.Close()
	if _, err := d.Write(make([]byte, memnet.BufferSize)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { _, err := d.Read(make([]byte, 1)); errs <- err }()
	go func() { _, err := d.Write([]byte("x")); errs <- err }()
	time.Sleep(10 * time.Millisecond)
	d.Close()
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked call after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake a blocked call")
		}
	}
}

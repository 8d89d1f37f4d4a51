package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestConnNettest runs x/net's net.Conn conformance suite (deadlines,
// concurrent use, close) over a pair of connected SSH channels.
func TestConnNettest(t *testing.T) {
	noLeaks(t)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		c := newCluster(t, nil, "a", "b")
		c1, c2 = c.dialPair("a", "b")
		stop = func() {
			c1.Close()
			c2.Close()
			c.nodes["a"].tr.Close()
			c.nodes["b"].tr.Close()
		}
		return c1, c2, stop, nil
	})
}

// TestConnDeadlineKeepsStream checks that a timed-out Read loses nothing:
// data sent after the timeout arrives intact and in order.
func TestConnDeadlineKeepsStream(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	cl, srv := c.dialPair("a", "b")
	defer cl.Close()
	defer srv.Close()

	srv.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	start := time.Now()
	_, err := srv.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("Read returned after %v, before the deadline", d)
	}
	srv.SetReadDeadline(time.Time{})
	want := payload(300<<10, 7)
	go cl.Write(want)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(srv, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("data after a read timeout differs")
	}
}

// TestConnWriteDeadlineWhenPeerStops fills the SSH window of a peer that
// does not read and checks that Write then times out instead of blocking.
func TestConnWriteDeadlineWhenPeerStops(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	cl, srv := c.dialPair("a", "b")
	defer cl.Close()
	defer srv.Close()

	cl.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 1<<20)
	var total int
	var err error
	for err == nil && total < 64<<20 {
		var n int
		n, err = cl.Write(buf)
		total += n
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that does not read: wrote %d bytes, err %v; want a timeout", total, err)
	}
	// The stream still works: the peer reads everything that was counted.
	cl.SetWriteDeadline(time.Time{})
	go io.Copy(io.Discard, srv)
	if _, err := cl.Write([]byte("more")); err != nil {
		t.Fatalf("Write after a timeout and reset deadline: %v", err)
	}
}

// TestConnEOFAndClose checks that Close delivers pending data and EOF to the
// peer and that the closed end reports net.ErrClosed.
func TestConnEOFAndClose(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	cl, srv := c.dialPair("a", "b")
	defer srv.Close()
	want := payload(100<<10, 1)
	if _, err := cl.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := io.ReadAll(srv)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	if _, err := cl.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := cl.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
	if cl.LocalAddr().String() == "" || cl.RemoteAddr().String() != srv.LocalAddr().String() {
		t.Fatalf("addresses: client local %v remote %v, server local %v", cl.LocalAddr(), cl.RemoteAddr(), srv.LocalAddr())
	}
}

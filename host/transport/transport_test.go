package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/host/trust"
)

// echo serves raft streams on tr: every stream echoes what it reads.
func echo(t testing.TB, tr *Transport) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		tr.Close() // ends Accept and the streams
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tr.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

func roundTripStream(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
}

func TestStreamAcceptDial(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	cl, srv := c.dialPair("a", "b")
	defer cl.Close()
	defer srv.Close()
	// Both directions on one stream.
	go func() {
		srv.Write([]byte("hello from b"))
	}()
	buf := make([]byte, 12)
	if _, err := io.ReadFull(cl, buf); err != nil || string(buf) != "hello from b" {
		t.Fatalf("read %q, %v", buf, err)
	}
	go cl.Write([]byte("hello from a"))
	if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "hello from a" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if got := c.nodes["b"].tr.Addr().String(); got != c.addr("b") || c.nodes["b"].tr.Addr().Network() != "tcp" {
		t.Fatalf("Addr() = %v", got)
	}
}

// TestConcurrentStreamsOneConnection opens many streams at once and checks
// that they all work and share a single SSH connection.
func TestConcurrentStreamsOneConnection(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	echo(t, c.nodes["b"].tr)
	a := c.nodes["a"].tr
	const streams = 64
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := a.Dial(raft.ServerAddress(c.addr("b")), 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			msg := payload(64<<10+i, byte(i))
			go conn.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(conn, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("stream %d: echo differs", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out, _ := sshConns(a)
	_, in := sshConns(c.nodes["b"].tr)
	if len(out) != 1 || len(in) != 1 {
		t.Fatalf("a has %d outgoing and b %d incoming SSH connections, want 1 and 1", len(out), len(in))
	}
}

// TestLargePayload sends 48 MiB each way at once over one stream.
func TestLargePayload(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	cl, srv := c.dialPair("a", "b")
	defer cl.Close()
	defer srv.Close()
	const size = 48 << 20
	send := func(w net.Conn, seed byte) <-chan [32]byte {
		done := make(chan [32]byte, 1)
		go func() {
			h := sha256.New()
			chunk := payload(1<<20+13, seed)
			for sent := 0; sent < size; {
				n := min(len(chunk), size-sent)
				h.Write(chunk[:n])
				if _, err := w.Write(chunk[:n]); err != nil {
					t.Errorf("write: %v", err)
					break
				}
				sent += n
			}
			var sum [32]byte
			h.Sum(sum[:0])
			done <- sum
		}()
		return done
	}
	recv := func(r net.Conn) <-chan [32]byte {
		done := make(chan [32]byte, 1)
		go func() {
			h := sha256.New()
			if n, err := io.CopyN(h, r, size); err != nil {
				t.Errorf("read after %d bytes: %v", n, err)
			}
			var sum [32]byte
			h.Sum(sum[:0])
			done <- sum
		}()
		return done
	}
	s1, r1 := send(cl, 1), recv(srv)
	s2, r2 := send(srv, 2), recv(cl)
	if <-s1 != <-r1 || <-s2 != <-r2 {
		t.Fatal("large payload corrupted")
	}
}

// TestPeerRestart closes a node and starts a new Transport with the same key
// on the same address: the other node's next Dial and Call work.
func TestPeerRestart(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, func(cfg *Config) {
		cfg.RPCHandler = func(_ context.Context, peer, method string, req []byte) ([]byte, error) {
			return []byte(cfg.NodeID + ":" + string(req)), nil
		}
	}, "a", "b")
	a, b := c.nodes["a"], c.nodes["b"]
	echo(t, b.tr)
	addrB := raft.ServerAddress(c.addr("b"))
	ctx := context.Background()

	conn, err := a.tr.Dial(addrB, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	roundTripStream(t, conn, []byte("before"))
	if _, err := a.tr.Call(ctx, string(addrB), "m", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("old stream still readable after the peer closed")
	}
	conn.Close()

	c.start(b)
	echo(t, b.tr)
	// Dial right away: it may find the dead connection before a has noticed
	// the peer's close; opening the stream then fails and it redials.
	conn, err = a.tr.Dial(addrB, 5*time.Second)
	if err != nil {
		t.Fatalf("Dial after the peer restarted: %v", err)
	}
	defer conn.Close()
	roundTripStream(t, conn, []byte("after"))
	resp, err := a.tr.Call(ctx, string(addrB), "m", []byte("y"))
	if err != nil || string(resp) != "b:y" {
		t.Fatalf("Call after the peer restarted: %q, %v", resp, err)
	}
}

// TestPeerRestartCallFirst: after a restart the first operation is a Call.
func TestPeerRestartCallFirst(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, func(cfg *Config) {
		cfg.RPCHandler = func(context.Context, string, string, []byte) ([]byte, error) { return []byte("ok"), nil }
	}, "a", "b")
	a, b := c.nodes["a"], c.nodes["b"]
	ctx := context.Background()
	if _, err := a.tr.Call(ctx, c.addr("b"), "m", nil); err != nil {
		t.Fatal(err)
	}
	b.tr.Close()
	c.start(b)
	// The idle RPC channel died with the old connection; a notices that
	// when the peer closes and never sends a request on it.
	poll(t, "a to notice the old connection died", func() bool {
		out, _ := sshConns(a.tr)
		return len(out) == 0
	})
	if resp, err := a.tr.Call(ctx, c.addr("b"), "m", nil); err != nil || string(resp) != "ok" {
		t.Fatalf("Call after restart: %q, %v", resp, err)
	}
}

func TestCloseIsIdempotentAndStopsEverything(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	a, b := c.nodes["a"].tr, c.nodes["b"].tr
	cl, srv := c.dialPair("a", "b")
	defer cl.Close()
	defer srv.Close()
	readErr := make(chan error, 1)
	go func() {
		_, err := srv.Read(make([]byte, 1))
		readErr <- err
	}()
	acceptErr := make(chan error, 1)
	go func() {
		_, err := b.Accept()
		acceptErr <- err
	}()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-acceptErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept during Close: %v, want ErrClosed", err)
	}
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read during Close: %v, want net.ErrClosed", err)
	}
	if _, err := b.Dial(raft.ServerAddress(c.addr("a")), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Call(context.Background(), c.addr("a"), "m", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close: %v, want ErrClosed", err)
	}
	// The client side sees the stream end.
	if _, err := cl.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read on the peer's stream succeeded after Close")
	}
	// And a's next Dial to the closed node fails instead of hanging.
	if _, err := a.Dial(raft.ServerAddress(c.addr("b")), 2*time.Second); err == nil {
		t.Fatal("Dial to a closed node succeeded")
	}
}

func TestDialUnknownAddress(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a")
	_, err := c.nodes["a"].tr.Dial("127.0.0.1:1", time.Second)
	if !errors.Is(err, ErrUnknownNode) || err.Error() != "transport: no known node at 127.0.0.1:1" {
		t.Fatalf("Dial to an unknown address: %v", err)
	}
	_, err = c.nodes["a"].tr.Call(context.Background(), "127.0.0.1:1", "m", nil)
	if !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Call to an unknown address: %v", err)
	}
}

// TestDialTimeout dials a TCP server that never speaks SSH: Dial returns
// when its timeout passes.
func TestDialTimeout(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	c := newCluster(t, nil, "a")
	c.res.set(ln.Addr().String(), "silent")
	start := time.Now()
	_, err = c.nodes["a"].tr.Dial(raft.ServerAddress(ln.Addr().String()), 200*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent server: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial took %v", d)
	}
	c.nodes["a"].tr.Close() // ends the handshake still waiting
}

// TestSourceAddress: with BindAddr on 127.0.0.2 the peer sees connections
// coming from 127.0.0.2.
func TestSourceAddress(t *testing.T) {
	noLeaks(t)
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 not available: %v", err)
	}
	probe.Close()
	c := newCluster(t, func(cfg *Config) {
		if cfg.NodeID == "a" {
			cfg.BindAddr = "127.0.0.2:0"
		}
	}, "a", "b")
	if got := c.addr("a"); !strings.HasPrefix(got, "127.0.0.2:") {
		t.Fatalf("a listens on %s", got)
	}
	cl, srv := c.dialPair("a", "b")
	defer cl.Close()
	defer srv.Close()
	host, _, _ := net.SplitHostPort(srv.RemoteAddr().String())
	if host != "127.0.0.2" {
		t.Fatalf("b sees a's stream coming from %s, want 127.0.0.2", srv.RemoteAddr())
	}
	if h, _, _ := net.SplitHostPort(cl.LocalAddr().String()); h != "127.0.0.2" {
		t.Fatalf("a's stream local address %s", cl.LocalAddr())
	}
	// b binds to 127.0.0.1 and so dials from it.
	cl2, srv2 := c.dialPair("b", "a")
	defer cl2.Close()
	defer srv2.Close()
	if h, _, _ := net.SplitHostPort(srv2.RemoteAddr().String()); h != "127.0.0.1" {
		t.Fatalf("a sees b's stream from %s", srv2.RemoteAddr())
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{
		NodeID:   "n1",
		BindAddr: "127.0.0.1:0",
		Signer:   newSigner(t),
		Trust:    &trust.Trust{},
		Resolve:  func(string) (string, bool) { return "", false },
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"NodeID":        func(c *Config) { c.NodeID = "has space" },
		"empty NodeID":  func(c *Config) { c.NodeID = "" },
		"BindAddr":      func(c *Config) { c.BindAddr = "nonsense" },
		"AdvertiseAddr": func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7000" },
		"advert port":   func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" },
		"Signer":        func(c *Config) { c.Signer = nil },
		"Trust":         func(c *Config) { c.Trust = nil },
		"Resolve":       func(c *Config) { c.Resolve = nil },
		"DialTimeout":   func(c *Config) { c.DialTimeout = -time.Second },
	} {
		cfg := good
		mod(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", name, err)
		}
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New() = %v, want ErrInvalidConfig", name, err)
		}
	}
	// Listening on all interfaces needs an advertised address.
	cfg := good
	cfg.BindAddr = "0.0.0.0:0"
	if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New on 0.0.0.0 without AdvertiseAddr: %v", err)
	}
	cfg.AdvertiseAddr = "node1.example:7000"
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Addr().String() != "node1.example:7000" {
		t.Fatalf("Addr() = %v", tr.Addr())
	}
	if tr.localAddr != nil {
		t.Fatalf("source address %v for a wildcard bind", tr.localAddr)
	}
}

// TestConnectionChurn kills connections over and over while streams and
// calls are being opened: every operation returns, the transports recover
// once the killing stops, and Close leaves no goroutine behind.
func TestConnectionChurn(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, func(cfg *Config) {
		cfg.RPCHandler = func(context.Context, string, string, []byte) ([]byte, error) { return []byte("ok"), nil }
	}, "a", "b")
	a, b := c.nodes["a"].tr, c.nodes["b"].tr
	echo(t, b)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if g%2 == 0 {
					if conn, err := a.Dial(raft.ServerAddress(c.addr("b")), time.Second); err == nil {
						conn.SetDeadline(time.Now().Add(time.Second))
						conn.Write([]byte("ping"))
						io.ReadFull(conn, make([]byte, 4))
						conn.Close()
					}
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					a.Call(ctx, c.addr("b"), "m", nil)
					cancel()
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		for _, side := range []*Transport{a, b} {
			out, in := sshConns(side)
			for _, sc := range append(out, in...) {
				sc.conn.Close()
			}
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	conn, err := a.Dial(raft.ServerAddress(c.addr("b")), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial after the churn: %v", err)
	}
	roundTripStream(t, conn, []byte("after churn"))
	conn.Close()
	if resp, err := a.Call(context.Background(), c.addr("b"), "m", nil); err != nil || string(resp) != "ok" {
		t.Fatalf("Call after the churn: %q, %v", resp, err)
	}
	for _, id := range []string{"a", "b"} {
		if strings.Contains(c.nodes[id].logs.String(), "blocked forever") {
			t.Fatalf("%s lost a channel open to the x/crypto/ssh race", id)
		}
	}
}

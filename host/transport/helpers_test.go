package transport

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/trust"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// noLeaks checks, after every cleanup registered later has run, that the
// test left no goroutine behind.
func noLeaks(t testing.TB) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logBuffer collects log output and forwards it to the test log.
type logBuffer struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// resolver maps advertised addresses to node IDs, like a raft configuration.
type resolver struct {
	mu sync.Mutex
	m  map[string]string
}

func (r *resolver) set(addr, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]string)
	}
	r.m[addr] = id
}

func (r *resolver) resolve(addr string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.m[addr]
	return id, ok
}

// node is one Transport under test with its identity.
type node struct {
	id     string
	signer ssh.Signer
	trust  *trust.Trust
	tr     *Transport
	logs   *logBuffer
	cfg    Config
}

// cluster is a set of Transports on loopback that trust each other.
type cluster struct {
	t     testing.TB
	res   *resolver
	nodes map[string]*node
}

// newCluster starts one Transport per id on 127.0.0.1 with its own Trust
// holding every node's key. mod, if not nil, adjusts each Config.
func newCluster(t testing.TB, mod func(*Config), ids ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, res: &resolver{}, nodes: make(map[string]*node)}
	var entries []trust.Entry
	for _, id := range ids {
		s := newSigner(t)
		c.nodes[id] = &node{id: id, signer: s}
		entries = append(entries, trust.Entry{NodeID: id, Key: s.PublicKey()})
	}
	for _, id := range ids {
		n := c.nodes[id]
		n.trust = &trust.Trust{}
		if err := n.trust.Set(entries); err != nil {
			t.Fatal(err)
		}
		n.logs = &logBuffer{t: t}
		n.cfg = Config{
			NodeID:      id,
			BindAddr:    "127.0.0.1:0",
			Signer:      n.signer,
			Trust:       n.trust,
			Resolve:     c.res.resolve,
			Logger:      slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			DialTimeout: 5 * time.Second,
		}
		if mod != nil {
			mod(&n.cfg)
		}
		c.start(n)
	}
	return c
}

// start (re)starts n's Transport with n.cfg and records its address.
func (c *cluster) start(n *node) {
	c.t.Helper()
	tr, err := New(n.cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	n.tr = tr
	c.t.Cleanup(func() { tr.Close() })
	c.res.set(tr.Addr().String(), n.id)
	// Later restarts listen on the same address.
	n.cfg.BindAddr = tr.Addr().String()
}

func (c *cluster) addr(id string) string { return c.nodes[id].tr.Addr().String() }

// dialPair opens a raft stream from one node to another and returns both
// ends.
func (c *cluster) dialPair(from, to string) (client, server net.Conn) {
	c.t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.nodes[to].tr.Accept()
		ch <- res{s, err}
	}()
	cl, err := c.nodes[from].tr.Dial(raft.ServerAddress(c.addr(to)), 5*time.Second)
	if err != nil {
		c.t.Fatalf("dial %s -> %s: %v", from, to, err)
	}
	r := <-ch
	if r.err != nil {
		c.t.Fatalf("accept on %s: %v", to, r.err)
	}
	return cl, r.c
}

// sshConns returns the live SSH connections of tr as (outgoing, incoming).
func sshConns(tr *Transport) (out, in []*sshConn) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for c := range tr.live {
		if sc, ok := c.(*sshConn); ok {
			if sc.outgoing {
				out = append(out, sc)
			} else {
				in = append(in, sc)
			}
		}
	}
	return out, in
}

// poll calls cond until it returns true or the time runs out.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustContain(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/host/trust"
)

// TestUnknownClientKeyRefused: a node whose key is in nobody's Trust cannot
// connect, and the server logs why.
func TestUnknownClientKeyRefused(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	x := &node{id: "x", signer: newSigner(t), trust: &trust.Trust{}, logs: &logBuffer{t: t}}
	// x trusts b, so the refusal comes from b.
	if err := x.trust.Add("b", c.nodes["b"].signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	x.cfg = Config{NodeID: "x", BindAddr: "127.0.0.1:0", Signer: x.signer, Trust: x.trust, Resolve: c.res.resolve,
		Logger: slog.New(slog.NewTextHandler(x.logs, nil))}
	c.start(x)
	_, err := x.tr.Dial(raft.ServerAddress(c.addr("b")), 5*time.Second)
	if err == nil {
		t.Fatal("a node with an unknown key connected")
	}
	mustContain(t, err.Error(), "unable to authenticate")
	poll(t, "b to log the refusal", func() bool {
		l := c.nodes["b"].logs.String()
		return strings.Contains(l, "refused incoming SSH connection") && strings.Contains(l, `offered for node \"x\") is not trusted`)
	})
}

// TestImpersonationRefused: node a's trusted key cannot log in as node b.
func TestImpersonationRefused(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b", "c")
	a := c.nodes["a"]
	fake := &node{id: "b", signer: a.signer, trust: a.trust, logs: &logBuffer{t: t}}
	fake.cfg = a.cfg
	fake.cfg.NodeID = "b" // a's key, b's name
	fake.cfg.BindAddr = "127.0.0.1:0"
	fake.cfg.Logger = slog.New(slog.NewTextHandler(fake.logs, nil))
	tr, err := New(fake.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, err = tr.Dial(raft.ServerAddress(c.addr("c")), 5*time.Second)
	if err == nil {
		t.Fatal("a's key logged in as b")
	}
	poll(t, "c to log the refusal", func() bool {
		return strings.Contains(c.nodes["c"].logs.String(), `belongs to node \"a\", not to node \"b\"`)
	})
	// The genuine a still gets in.
	cl, srv := c.dialPair("a", "c")
	cl.Close()
	srv.Close()
}

// TestHostKeyOfOtherNodeRefused: the dialler refuses a server whose host key
// is bound to another node than the one Resolve names for the address.
func TestHostKeyOfOtherNodeRefused(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b", "c")
	addrB := c.addr("b")
	c.res.set(addrB, "c") // a believes c listens there; b answers
	_, err := c.nodes["a"].tr.Dial(raft.ServerAddress(addrB), 5*time.Second)
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("Dial: %v, want ErrHostKeyMismatch", err)
	}
	mustContain(t, err.Error(), `the key of node "b"`)
	mustContain(t, err.Error(), `expected node "c"`)
	_, err = c.nodes["a"].tr.Call(context.Background(), addrB, "m", nil)
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("Call: %v, want ErrHostKeyMismatch", err)
	}
	mustContain(t, c.nodes["a"].logs.String(), "refused peer host key")
}

// TestResolveChangeDropsConnection: when an address comes to name another
// node, the connection made for the old node is not reused.
func TestResolveChangeDropsConnection(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b", "c")
	echo(t, c.nodes["b"].tr)
	addrB := c.addr("b")
	conn, err := c.nodes["a"].tr.Dial(raft.ServerAddress(addrB), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	c.res.set(addrB, "c")
	if _, err := c.nodes["a"].tr.Dial(raft.ServerAddress(addrB), 5*time.Second); !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("Dial after the address moved to c: %v, want ErrHostKeyMismatch", err)
	}
}

// TestUntrustedHostKeyRefused: the server's key is in no Trust entry.
func TestUntrustedHostKeyRefused(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	c.nodes["a"].trust.Remove("b")
	_, err := c.nodes["a"].tr.Dial(raft.ServerAddress(c.addr("b")), 5*time.Second)
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("Dial: %v, want ErrHostKeyMismatch", err)
	}
	mustContain(t, err.Error(), "which is not trusted")
}

// TestRevokedNodeRefused: revoking a node cuts its live connections and
// refuses new ones, even with its key in the authorized_keys file; Add lets
// it back in.
func TestRevokedNodeRefused(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	a, b := c.nodes["a"], c.nodes["b"]
	// b trusts a through its authorized_keys file only.
	path := filepath.Join(t.TempDir(), trust.AuthorizedKeysFile)
	if err := os.WriteFile(path, []byte(trust.TrustLine(a.signer.PublicKey(), "a")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.trust.LoadAuthorizedKeys(path); err != nil {
		t.Fatal(err)
	}
	b.trust.Remove("a")
	if _, ok := b.trust.NodeFor(a.signer.PublicKey()); !ok {
		t.Fatal("a's key from the file is not trusted")
	}
	cl, srv := c.dialPair("a", "b")
	defer cl.Close()
	defer srv.Close()

	b.trust.Revoke("a")
	// The live stream ends.
	cl.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(cl, make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a revoked node's stream: %v, want the stream to end", err)
	}
	poll(t, "a's connection to be dropped", func() bool {
		out, _ := sshConns(a.tr)
		return len(out) == 0
	})
	if _, err := a.tr.Dial(raft.ServerAddress(c.addr("b")), 5*time.Second); err == nil {
		t.Fatal("a revoked node connected")
	}
	mustContain(t, b.logs.String(), "no longer trusted")

	// Re-adding the node lifts the revocation.
	if err := b.trust.Add("a", a.signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	cl2, srv2 := c.dialPair("a", "b")
	cl2.Close()
	srv2.Close()
}

// TestReplicatedTrustAddsNode: a node trusted only through Add can connect
// once it is added, without any file.
func TestReplicatedTrustAddsNode(t *testing.T) {
	noLeaks(t)
	c := newCluster(t, nil, "a", "b")
	a, b := c.nodes["a"], c.nodes["b"]
	b.trust.Remove("a")
	if _, err := a.tr.Dial(raft.ServerAddress(c.addr("b")), 5*time.Second); err == nil {
		t.Fatal("connected before being trusted")
	}
	if err := b.trust.Add("a", a.signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	cl, srv := c.dialPair("a", "b")
	cl.Close()
	srv.Close()
}

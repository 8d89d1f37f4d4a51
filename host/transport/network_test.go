package transport

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/internal/memnet"
)

// memCluster is newCluster on an in-memory network: node id is host id and
// listens on "id:<port>".
func memCluster(t *testing.T, mn *memnet.Network, h RPCHandler, ids ...string) *cluster {
	return newCluster(t, func(cfg *Config) {
		cfg.Network = mn.Host(cfg.NodeID)
		cfg.BindAddr = cfg.NodeID + ":0"
		cfg.RPCHandler = h
	}, ids...)
}

// TestNetwork: with Config.Network, streams and RPCs run over that network
// with every SSH check in place: the handler learns the proven node ID, a
// key logging in as another node is refused, and a partition of the network
// cuts the connection until it heals.
func TestNetwork(t *testing.T) {
	noLeaks(t)
	mn := memnet.New()
	c := memCluster(t, mn, func(_ context.Context, peer, method string, req []byte) ([]byte, error) {
		return []byte(peer + "/" + method + "/" + string(req)), nil
	}, "a", "b", "c")
	if got := c.addr("b"); !strings.HasPrefix(got, "b:") {
		t.Fatalf("b listens on %s, not on the in-memory network", got)
	}
	call := func(from, to string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := c.nodes[from].tr.Call(ctx, c.addr(to), "m", []byte("x"))
		if err == nil && string(resp) != from+"/m/x" {
			t.Fatalf("call %s -> %s answered %q", from, to, resp)
		}
		return err
	}
	if err := call("a", "b"); err != nil {
		t.Fatal(err)
	}

	// A raft stream carries data both ways.
	cl, srv := c.dialPair("a", "c")
	msg := payload(100_000, 7)
	go func() { cl.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(srv, got); err != nil || string(got) != string(msg) {
		t.Fatalf("stream a -> c: %v", err)
	}
	cl.Close()
	srv.Close()

	// a's key, b's name, on a host of its own: c refuses it.
	fake := &node{id: "b", signer: c.nodes["a"].signer, trust: c.nodes["a"].trust, logs: &logBuffer{t: t}}
	fake.cfg = c.nodes["a"].cfg
	fake.cfg.NodeID, fake.cfg.BindAddr, fake.cfg.Network = "b", "x:0", mn.Host("x")
	fake.cfg.Logger = slog.New(slog.NewTextHandler(fake.logs, nil))
	tr, err := New(fake.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Dial(raft.ServerAddress(c.addr("c")), 5*time.Second); err == nil {
		t.Fatal("a's key logged in as b over the in-memory network")
	}
	tr.Close()
	poll(t, "c to log the refusal", func() bool {
		return strings.Contains(c.nodes["c"].logs.String(), `belongs to node \"a\", not to node \"b\"`)
	})

	// A partition between a and b cuts their connection; a still reaches c.
	mn.Partition("a", "b")
	if err := call("a", "b"); err == nil {
		t.Fatal("call across a partition succeeded")
	}
	if err := call("a", "c"); err != nil {
		t.Fatalf("call a -> c during the a/b partition: %v", err)
	}
	mn.Heal()
	poll(t, "a to reach b again after Heal", func() bool { return call("a", "b") == nil })
}

// TestNetworkListenError: New reports the network's listen error.
func TestNetworkListenError(t *testing.T) {
	noLeaks(t)
	mn := memnet.New()
	c := memCluster(t, mn, nil, "a")
	cfg := c.nodes["a"].cfg // BindAddr is now a's address, taken
	cfg.Logger = nil
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("New on a taken address: %v", err)
	}
}

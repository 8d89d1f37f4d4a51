//go:build !wasip1

package counter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestCluster deploys counter.wasm on a 3-node cluster through a follower,
// sends commands through every node (followers forward them to the leader)
// and reads the answers from a follower: its local state (stale) and a
// leader read it forwards. Every replica ends with the same digest at the
// same applied index.
func TestCluster(t *testing.T) {
	wasm := buildCounter(t)
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	follower := c.Followers()[0].Node

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster.Deploy(t, follower, "counter", wasm)
	// DeployPlugin returns when the leader has applied the deploy; the
	// follower's own description of the plugin is complete once it has too.
	var info host.PluginInfo
	cluster.Poll(t, 30*time.Second, func() bool {
		for _, p := range follower.Plugins() {
			if p.Name == "counter" {
				info = p
			}
		}
		return info.Hash == plugin.HashOf(wasm)
	}, "follower %s does not run the deployed module: %+v", follower.ID(), &info)
	if info.Name != "counter" || info.Version != "1.0.0" || info.ABIVersion != 1 || info.HasMigrate || info.Hash == "" {
		t.Fatalf("deployed: %+v", info)
	}

	// 30 increments of "hits", 10 through each node.
	var last counter
	for i := 0; i < 30; i++ {
		n := c.Members[i%3].Node
		res, err := n.Apply(ctx, "counter", enc(t, m{"op": "incr", "name": "hits", "by": i}))
		if err != nil {
			t.Fatalf("incr through %s: %v", n.ID(), err)
		}
		decode(t, res, &last)
		if last.Version <= info.ActiveSince {
			t.Fatalf("incr applied at %d, before the deploy at %d", last.Version, info.ActiveSince)
		}
	}
	const total = 29 * 30 / 2
	if last.Value != total {
		t.Fatalf("hits = %d, want %d", last.Value, total)
	}
	// Errors come back through a follower with their code and message.
	res, err := follower.Apply(ctx, "counter", enc(t, m{"op": "incr", "name": "hits", "expect": 1}))
	if err != nil || res.Code != abi.CodeConflict || string(res.Data) != fmt.Sprintf("counter hits is %d, expected 1", total) {
		t.Fatalf("conflict through %s: %v %q %v", follower.ID(), res.Code, res.Data, err)
	}
	res, err = follower.Apply(ctx, "counter", enc(t, m{"op": "trap", "name": "hits"}))
	if err != nil || res.Code != abi.CodeTrap {
		t.Fatalf("trap through %s: %v %q %v", follower.ID(), res.Code, res.Data, err)
	}

	// The follower's own state catches up with the last write...
	cluster.Poll(t, 20*time.Second, func() bool { return follower.AppliedIndex() >= last.Version }, "follower behind")
	for _, level := range []host.Consistency{host.Stale, host.Leader, host.Linearizable} {
		res, err := follower.Query(ctx, "counter", enc(t, m{"op": "get", "name": "hits"}), level)
		if err != nil {
			t.Fatalf("%v query through %s: %v", level, follower.ID(), err)
		}
		var got counter
		decode(t, res, &got)
		if got != last {
			t.Fatalf("%v get through %s: %+v, want %+v (the trap changed nothing)", level, follower.ID(), got, last)
		}
	}
	res, err = follower.Query(ctx, "counter", enc(t, m{"op": "get", "name": "nope"}), host.Stale)
	if err != nil || res.Code != abi.CodeNotFound {
		t.Fatalf("get of a missing counter: %v %q %v", res.Code, res.Data, err)
	}

	// ...and every replica agrees.
	c.WaitConverged(3)
	var digests []host.Digest
	cluster.Poll(t, 20*time.Second, func() bool {
		digests = digests[:0]
		for _, mem := range c.Members {
			d, err := mem.Node.StateDigest("counter")
			if err != nil {
				t.Fatal(err)
			}
			digests = append(digests, d)
		}
		return digests[0] == digests[1] && digests[0] == digests[2]
	}, "replicas disagree: %v", &digests)
	if digests[0].Keys != 1 {
		t.Fatalf("digest %+v: want 1 key", digests[0])
	}
	for _, mem := range c.Members {
		var found bool
		for _, p := range mem.Node.Plugins() {
			found = found || (p.Name == "counter" && p.Hash == info.Hash)
		}
		if !found {
			t.Fatalf("%s does not run counter %s: %+v", mem.ID, info.Hash, mem.Node.Plugins())
		}
		var l struct {
			Counters map[string]int64 `msgpack:"counters"`
		}
		res, err := mem.Node.Query(ctx, "counter", enc(t, m{"op": "list"}), host.Stale)
		if err != nil {
			t.Fatal(err)
		}
		if err := msgpack.Unmarshal(res.Data, &l); err != nil || len(l.Counters) != 1 || l.Counters["hits"] != total {
			t.Fatalf("list on %s: %v %v", mem.ID, l.Counters, err)
		}
	}
}

//go:build !wasip1

package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/plugintest"
)

type m = map[string]any

type job struct {
	ID       uint64 `json:"id"`
	Payload  string `json:"payload"`
	Attempts uint32 `json:"attempts"`
}

// TestCluster deploys the queue on a 3-node cluster (real nodes, Raft over
// the SSH transport) through a follower with the Go client, pushes and pops
// through every node, upgrades it to v2 under its hash (its migration moves
// the jobs left), leases and acknowledges through v2, and checks that every
// replica holds the same state.
func TestCluster(t *testing.T) {
	v1, err := plugintest.Build(".", ".")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := plugintest.Build(".", "./v2")
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: cluster.PatientRaft})
	var nodes []*client.Client // one per node, pinned to it
	var follower *client.Client
	for _, mem := range c.Members {
		srv := httptest.NewServer(httpapi.New(mem.Node, httpapi.DefaultConfig()).Handler())
		t.Cleanup(srv.Close)
		cl, err := client.New(client.Config{Endpoints: []string{srv.URL}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		nodes = append(nodes, cl)
		if mem == c.Followers()[0] {
			follower = cl
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	info1, err := follower.Deploy(ctx, "queue", v1)
	if err != nil || info1.Version != "1.0.0" {
		t.Fatalf("deploy v1 through a follower: %+v, %v", info1, err)
	}
	for i := range 9 {
		var r struct {
			ID uint64 `json:"id"`
		}
		if err := nodes[i%3].CommandJSON(ctx, "queue", m{"op": "push", "payload": string(rune('a' + i))}, &r); err != nil || r.ID != uint64(i+1) {
			t.Fatalf("push %d through node %d: id %d, %v", i, i%3, r.ID, err)
		}
	}
	if err := follower.CommandJSON(ctx, "queue", m{"op": "push"}, nil); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("a push without a payload: %v, want bad_request", err)
	}
	for i := range 3 { // FIFO, whichever node takes the pop
		var j job
		if err := nodes[(i+1)%3].CommandJSON(ctx, "queue", m{"op": "pop"}, &j); err != nil || j.ID != uint64(i+1) || j.Payload != string(rune('a'+i)) {
			t.Fatalf("pop %d: %+v, %v", i, j, err)
		}
	}

	// The upgrade names the module it replaces; a deploy that does not is
	// refused and changes nothing.
	if _, err := follower.Deploy(ctx, "queue", v2); !errors.Is(err, client.ErrPrecondition) {
		t.Fatalf("deploying v2 over v1 without its hash: %v, want precondition_failed", err)
	}
	info2, err := follower.Upgrade(ctx, "queue", info1.Hash, v2)
	if err != nil || info2.Version != "2.0.0" || !info2.HasMigrate {
		t.Fatalf("upgrade to v2 through a follower: %+v, %v", info2, err)
	}
	var lease job
	if err := nodes[2].CommandJSON(ctx, "queue", m{"op": "pop", "lease_ms": 60000}, &lease); err != nil || lease.ID != 4 || lease.Attempts != 1 {
		t.Fatalf("v2 pop of a migrated job: %+v, %v", lease, err)
	}
	if err := nodes[0].CommandJSON(ctx, "queue", m{"op": "ack", "id": lease.ID}, nil); err != nil {
		t.Fatalf("ack %d: %v", lease.ID, err)
	}
	var n struct {
		Queued int `json:"queued"`
		Leased int `json:"leased"`
	}
	for i, cl := range nodes {
		if err := cl.QueryJSON(ctx, "queue", m{"op": "len"}, &n, client.WithConsistency(client.Linearizable)); err != nil || n.Queued != 5 || n.Leased != 0 {
			t.Fatalf("len through node %d: %+v, %v; want 5 queued", i, n, err)
		}
	}

	c.WaitConverged(3)
	var digests []string
	cluster.Poll(t, 20*time.Second, func() bool {
		digests = digests[:0]
		for _, cl := range nodes {
			d, err := cl.Digest(ctx, "queue")
			if err != nil {
				t.Fatal(err)
			}
			digests = append(digests, d.Digest)
		}
		return digests[0] == digests[1] && digests[1] == digests[2]
	}, "replicas disagree: %v", &digests)
}

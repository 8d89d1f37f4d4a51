package host_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestQuorumLossRecoveryPeersJSON: two of three voters are lost for good;
// the survivor cannot elect itself. Stopped, given a peers.json naming only
// itself and restarted, it leads, serves the data it had, and takes writes.
func TestQuorumLossRecoveryPeersJSON(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	leader := c.Leader()
	mustSet(t, leader.Node, "kept", "yes")
	survivor := c.Followers()[0]
	waitValue(t, survivor.Node, "kept", "yes")
	for _, m := range c.Members {
		if m != survivor {
			c.Crash(m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := survivor.Node.WaitForLeader(ctx); err == nil && survivor.Node.IsLeader() {
		t.Fatalf("the survivor leads without a quorum")
	}
	c.Stop(survivor)
	peers, _ := json.Marshal([]map[string]any{{"id": survivor.ID, "address": survivor.Proxy.Addr(), "non_voter": false}})
	if err := os.WriteFile(filepath.Join(survivor.DataDir(), host.PeersFile), peers, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Restart(survivor)
	cluster.Poll(t, 60*time.Second, func() bool {
		v, err := get(t, survivor.Node, "kept", host.Linearizable)
		return err == nil && v == "yes"
	}, "the recovered survivor does not serve the data it had")
	mustSet(t, survivor.Node, "after", "recovery")
	mustGet(t, survivor.Node, "after", host.Linearizable, "recovery")
	if _, err := os.Stat(filepath.Join(survivor.DataDir(), host.PeersFile)); !os.IsNotExist(err) {
		t.Errorf("peers.json is still there: %v", err)
	}
	if ms := members(t, survivor.Node); len(ms) != 1 {
		t.Errorf("members after recovery: %v", ms)
	}
}

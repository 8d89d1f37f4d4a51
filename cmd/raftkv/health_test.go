package main

import (
	"testing"

	kvclient "github.com/raftkv/raftkv/client"
)

// TestHealthNamesTheReason: a member's health in status --cluster and
// health --cluster says what is wrong with it, from the status it reports:
// a full disk showed "ok", a removed node "no leader", a diverged log
// "catching up" with lag 0.
func TestHealthNamesTheReason(t *testing.T) {
	ready := kvclient.NodeStatus{NodeID: "n1", Leader: "n1", Ready: true}
	for _, c := range []struct {
		name         string
		st           kvclient.NodeStatus
		health, says string
	}{
		{"ok", ready, "ok", ""},
		{"log not writable", func() kvclient.NodeStatus {
			s := ready
			s.Degraded = "write raft.db: no space left on device"
			return s
		}(), "degraded", "cannot write its Raft log: write raft.db: no space left on device"},
		{"removed", kvclient.NodeStatus{NodeID: "n3", Removed: "this node (n3) was removed from the cluster", NotReady: "this node (n3) was removed"},
			"removed", "this node (n3) was removed from the cluster"},
		{"catching up", kvclient.NodeStatus{NodeID: "n2", Leader: "n1", AppliedIndex: 5, CommitIndex: 9, NotReady: "catching up with the leader's commit index"},
			"catching up", "applied 5 of 9"},
		{"ahead of the leader", kvclient.NodeStatus{NodeID: "n2", Leader: "n1", NotReady: "applied index 70000 is ahead of the leader's commit index 4172"},
			"not ready", "applied index 70000 is ahead of the leader's commit index 4172"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := nodeStatus{NodeStatus: c.st}
			n.Health = health(&n)
			if n.Health != c.health || healthDetail(&n) != c.says {
				t.Fatalf("health %q, %q; want %q, %q", n.Health, healthDetail(&n), c.health, c.says)
			}
		})
	}
}

package host_test

import (
	"testing"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestNoPipelinedReplication: a node's Raft transport refuses pipelined
// replication. hashicorp/raft v1.7.3's pipeline deadlocks when a follower
// answers unsuccessfully (its append failed on a full disk) while the next
// request and response are in flight: the leader never sent that follower
// another entry (docs/operations.md, the chaos suite's seed 203).
func TestNoPipelinedReplication(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 1})
	if !host.PipelineRefused(c.Leader().Node) {
		t.Fatal("the Raft transport offers pipelined replication")
	}
}

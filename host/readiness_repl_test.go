package host_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/hostseam"
)

// TestReadinessNeedsReplication: a follower the leader cannot replicate to,
// whose heartbeats still arrive (so Raft's LastContact stays fresh), is not
// ready once twice HeartbeatTimeout passes without an AppendEntries request,
// and is ready again once they arrive. Without that check it stayed ready on
// the last commit index it had heard, however old, and its stale reads
// served that state as current.
func TestReadinessNeedsReplication(t *testing.T) {
	var refusing atomic.Value // the ID of the node that turns AppendEntries away
	refusing.Store("")
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		id := cfg.NodeID
		hostseam.SetRefuseAppends(cfg, func() bool { return refusing.Load() == id })
	}})
	l, f := c.Leader(), c.Followers()[0]
	mustSet(t, l.Node, "before", "1")
	cluster.Poll(t, 10*time.Second, func() bool { ok, _ := f.Node.Ready(); return ok }, "the follower is not ready")

	refusing.Store(f.ID)
	mustSet(t, l.Node, "after", "2") // committed with the other follower
	var why string
	cluster.Poll(t, 10*time.Second, func() bool {
		var ok bool
		ok, why = f.Node.Ready()
		return !ok
	}, "the follower stayed ready while the leader could not replicate to it")
	if !strings.Contains(why, "cannot replicate to this node") {
		t.Errorf("not ready because %q, want the leader's replication named", why)
	}
	if lc := f.Node.Stats().Raft["last_contact"]; lc == "never" || !strings.HasSuffix(lc, "ms") && !strings.HasSuffix(lc, "µs") {
		t.Errorf("last contact with the leader %s ago: the heartbeats should still arrive", lc)
	}
	if v, err := get(t, f.Node, "after", host.Stale); !errors.Is(err, &abi.Error{Code: abi.CodeNotFound}) {
		t.Errorf("stale read of the write it never received: %q, %v (want not found)", v, err)
	}

	refusing.Store("")
	cluster.Poll(t, 10*time.Second, func() bool { ok, _ := f.Node.Ready(); return ok }, "the follower is not ready again")
	if v, err := get(t, f.Node, "after", host.Stale); err != nil || v != "2" {
		t.Errorf("stale read after the repair: %q, %v", v, err)
	}
}

package host_test

import (
	"testing"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestForgedDigestRefused: digest checks come from the leader. A member
// that does not lead (here a voter, under its own name) sending forged
// digests at a real check's index would make the node it calls report a
// divergence that does not exist (/healthz degraded, a STATE DIVERGENCE
// WARN), and drop what that node knew of real ones. Each node refuses it,
// the leader included, and reports nothing.
func TestForgedDigestRefused(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		cfg.DigestCheckInterval = digestCheckInterval
	}})
	setKV(t, c, "k", "v")
	fs := c.Followers()
	dc := checkedAll(t, c, c.Leader().Node.AppliedIndex())
	sender := fs[0]
	forged := map[string]any{"index": dc.Index, "digests": []any{map[string]any{"name": "kv", "state": "forged", "module": "forged"}}}
	for _, target := range []*cluster.Member{fs[1], c.Leader()} {
		p := attacker(t, memberKey(t, sender), sender.ID, target)
		if code, msg := rawCall(t, p, "digest", forged); code != peerrpc.CodeForbidden {
			t.Errorf("forged digest from %s to %s: code %d (%s), want forbidden", sender.ID, target.ID, code, msg)
		}
		if d := target.Node.Divergences(); len(d) != 0 {
			t.Errorf("%s reports a divergence after %s's forged digest: %+v", target.ID, sender.ID, d)
		}
		if s := target.Node.Stats().DivergenceSummary; s != "" {
			t.Errorf("%s: divergence summary %q", target.ID, s)
		}
	}
	if !c.Logged("refused a peer RPC", "peer="+sender.ID, "method=digest") {
		t.Error("no refusal of the forged digest logged")
	}
	// The leader's own checks still compare every member.
	setKV(t, c, "k2", "v")
	checkedAll(t, c, c.Leader().Node.AppliedIndex())
}

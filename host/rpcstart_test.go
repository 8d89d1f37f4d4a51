package host

import (
	"context"
	"errors"
	"testing"

	"github.com/raftkv/raftkv/host/peerrpc"
)

// TestRPCBeforeRaftStarts: a call forwarded to a node whose transport
// listens but whose Raft is not running yet (a leader killed and restarted
// while its peers still take it for the leader) is answered "not ready",
// not with a nil-pointer panic (which the fault suite found: test/chaos); a
// ping is answered.
func TestRPCBeforeRaftStarts(t *testing.T) {
	n := &Node{cfg: Config{NodeID: "n1"}} // as New leaves it until raft.NewRaft returns
	for _, m := range []peerrpc.Method{peerrpc.Apply, peerrpc.Query, peerrpc.Deploy, peerrpc.Remove, peerrpc.Join, peerrpc.Trust, peerrpc.Status, peerrpc.RemovePlugin, peerrpc.Ping} {
		method := m.Name
		body := pingBody
		if m != peerrpc.Ping {
			body, _ = (&peerrpc.QueryBody{Plugin: "kv", Data: []byte{0x80}}).Marshal()
		}
		raw, err := n.serveRPC(context.Background(), "n2", method, body)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var resp peerrpc.Response
		if err := resp.Unmarshal(raw); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if m == peerrpc.Ping { // answered: it needs nothing from Raft
			if resp.ErrKind != 0 {
				t.Errorf("ping before Raft runs: %s", resp.Err)
			}
			continue
		}
		if _, err := resp.Result(); !errors.Is(err, ErrNotReady) {
			t.Errorf("%s before Raft runs: %v, want ErrNotReady", method, err)
		}
	}
}

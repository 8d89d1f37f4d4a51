package host

import (
	"context"
	"errors"
	"testing"
)

// TestRPCBeforeRaftStarts: a call forwarded to a node whose transport
// listens but whose Raft is not running yet (a leader killed and restarted
// while its peers still take it for the leader) is answered "not ready",
// not with a nil-pointer panic (which the fault suite found: test/chaos); a
// ping is answered.
func TestRPCBeforeRaftStarts(t *testing.T) {
	n := &Node{cfg: Config{NodeID: "n1"}} // as New leaves it until raft.NewRaft returns
	for _, method := range []string{rpcApply, rpcQuery, rpcDeploy, rpcRemove, rpcJoin, rpcTrust, rpcStatus, rpcRemovePlugin, rpcPing} {
		body := pingBody
		if method != rpcPing {
			body, _ = (&queryRequest{Plugin: "kv", Data: []byte{0x80}}).marshal()
		}
		raw, err := n.serveRPC(context.Background(), "n2", method, body)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var resp rpcResponse
		if err := resp.unmarshal(raw); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if method == rpcPing { // answered: it needs nothing from Raft
			if resp.ErrKind != 0 {
				t.Errorf("ping before Raft runs: %s", resp.Err)
			}
			continue
		}
		if err := decodeErr(resp.ErrKind, resp.Err); !errors.Is(err, ErrNotReady) {
			t.Errorf("%s before Raft runs: %v, want ErrNotReady", method, err)
		}
	}
}

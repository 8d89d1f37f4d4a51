package host

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"github.com/raftkv/raftkv/internal/fsm"
)

// PluginEngine reports what runs the named plugin's code on n: "wasm",
// "native" (hostseam.SetNativePlugins), or "" when the plugin is not active.
func PluginEngine(n *Node, name string) string {
	p := n.fsm.Plugin(name)
	if p == nil {
		return ""
	}
	return p.Engine()
}

// CommandEntry is the log entry data of a command for plugin, as the leader
// proposes it (tests forge Raft RPCs with it).
func CommandEntry(plugin string, cmd []byte) []byte {
	b, _ := (&fsm.Envelope{Kind: fsm.KindCommand, Plugin: plugin, Payload: cmd}).Encode()
	return b
}

// PipelineRefused reports whether n's Raft transport refuses pipelined
// replication (raft then replicates one request at a time).
func PipelineRefused(n *Node) bool {
	_, err := n.ntrans.AppendEntriesPipeline("nobody", "127.0.0.1:1")
	return errors.Is(err, raft.ErrPipelineReplicationNotSupported)
}

// TrustList describes n's trust list: the node IDs it trusts keys for, and
// the revoked ones.
func TrustList(n *Node) string {
	var ids []string
	for _, e := range n.trust.Entries() {
		ids = append(ids, e.NodeID)
	}
	return fmt.Sprintf("%v (revoked %v)", ids, n.trust.Revoked())
}

// Vouched reports whether n takes Raft RPCs from voters a voter vouched for
// (vouch.go), its own configuration lacking them.
func Vouched(n *Node) bool { return n.vouched.Load() != nil }

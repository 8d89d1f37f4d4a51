package host

import (
	"context"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
)

// TransferLeadership makes n hand leadership to the member id at addr.
func TransferLeadership(n *Node, id, addr string) error {
	return n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error()
}

// QueryLocal runs a query on n itself, as n does for the reads it serves (a
// leader's, or a stale one), without forwarding it.
func QueryLocal(ctx context.Context, n *Node, name string, q []byte, level Consistency) (abi.Result, error) {
	return n.queryLocal(ctx, name, q, level)
}

// OpenModules reports how many compiled modules n holds open.
func OpenModules(n *Node) int { return n.rt.OpenModules() }

// The slow test plugin and its timeouts (see fsm_test.go), for the node tests.
var SlowWasm = slowWasm

const (
	SpinIters        = spinIters
	ShortCallTimeout = shortCallTimeout
	LongCallTimeout  = longCallTimeout
)

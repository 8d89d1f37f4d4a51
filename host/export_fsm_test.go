package host

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
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

// RewriteBackupPlugin returns a copy of a backup whose plugin name runs
// wasm (with its hash, so that every checksum holds) and, if lim is not
// nil, those limits: a backup that verifies but holds what a deploy would
// refuse.
func RewriteBackupPlugin(t testing.TB, backup []byte, name string, wasm []byte, lim *plugin.Limits) []byte {
	t.Helper()
	r := bytes.NewReader(backup)
	h, err := readSnapshotHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.Plugins {
		if h.Plugins[i].Name == name {
			h.Plugins[i].Wasm, h.Plugins[i].Hash = wasm, plugin.HashOf(wasm)
			if lim != nil {
				h.Plugins[i].Limits = lim
			}
		}
	}
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	if err := writeSnapshotHeader(bw, &h); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	rest, _ := io.ReadAll(r)
	return append(out.Bytes(), rest...)
}

// SnapshotNow makes n take a Raft snapshot now.
func SnapshotNow(n *Node) error { return n.raft.Snapshot().Error() }

package host

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/fsm"
	"github.com/raftkv/raftkv/internal/wasmbuild"
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

// SpinIters is a "spin" of the slow test plugin (testdata/slow) that takes
// about 4 seconds: some 40 ns an iteration, past ShortCallTimeout on any
// machine and within LongCallTimeout on one 30 times slower.
// ShortCallTimeout still lets a Go module's _initialize finish on a loaded
// machine (250 ms did not, at load 20). internal/fsm's tests use the same.
const (
	SpinIters        = "100000000"
	ShortCallTimeout = time.Second
	LongCallTimeout  = 2 * time.Minute
)

// SlowWasm builds the slow test plugin at a version, with more -X flags.
func SlowWasm(t testing.TB, version string, flags ...string) []byte {
	return wasmbuild.Build(t, "./testdata/slow", append([]string{"-X main.version=" + version}, flags...)...)
}

// RewriteBackupPlugin returns a copy of a backup whose plugin name runs
// wasm (with its hash, so that every checksum holds) and, if lim is not
// nil, those limits: a backup that verifies but holds what a deploy would
// refuse.
func RewriteBackupPlugin(t testing.TB, backup []byte, name string, wasm []byte, lim *plugin.Limits) []byte {
	t.Helper()
	r := bytes.NewReader(backup)
	h, err := fsm.ReadSnapshotHeader(r)
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
	if err := fsm.WriteSnapshotHeader(bw, &h); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	rest, _ := io.ReadAll(r)
	return append(out.Bytes(), rest...)
}

// SnapshotNow makes n take a Raft snapshot now.
func SnapshotNow(n *Node) error { return n.raft.Snapshot().Error() }

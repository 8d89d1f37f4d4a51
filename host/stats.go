package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/state"
)

// Stats is a snapshot of a node's status.
type Stats struct {
	NodeID       string            `json:"node_id"`
	State        string            `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string            `json:"leader"`
	LeaderAddr   string            `json:"leader_address"`
	Term         uint64            `json:"term"`
	LastIndex    uint64            `json:"last_index"`
	CommitIndex  uint64            `json:"commit_index"`
	AppliedIndex uint64            `json:"applied_index"`
	Ready        bool              `json:"ready"`             // has a leader and this node has caught up
	Failure      string            `json:"failure,omitempty"` // why the node stopped applying, if it did
	Plugins      []PluginInfo      `json:"plugins"`
	LogStore     string            `json:"log_store"` // LogStoreWAL or LogStoreBolt
	Raft         map[string]string `json:"raft"`
}

// Stats returns the node's status.
func (n *Node) Stats() Stats {
	rs := n.raft.Stats()
	leaderAddr, leaderID := n.raft.LeaderWithID()
	s := Stats{
		NodeID: n.cfg.NodeID, State: n.raft.State().String(), Leader: string(leaderID), LeaderAddr: string(leaderAddr),
		LastIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.applied.Load(),
		Plugins: n.Plugins(), LogStore: n.logStoreKind, Raft: rs,
	}
	s.Term, _ = strconv.ParseUint(rs["term"], 10, 64)
	if f := n.fsm.failed.Load(); f != nil {
		s.Failure = *f
	}
	s.Ready = leaderID != "" && s.Failure == "" &&
		(s.AppliedIndex >= s.CommitIndex || n.onlyHostEntries(s.AppliedIndex+1, s.CommitIndex)) &&
		(n.raft.State() != raft.Leader || n.leaderReady())
	return s
}

// Backup writes a consistent snapshot of this node's state machine (every
// plugin namespace, the active modules and the trust list, with checksums)
// to w. Run it on the leader after a linearizable read for the latest state.
// A node that stopped applying the log (fail-stop) refuses with ErrStopped.
func (n *Node) Backup(ctx context.Context, w io.Writer) (int64, error) {
	// A fail-stopped node has no consistent state to offer past the failure,
	// and its FSM, stuck, would never answer Raft's snapshot request.
	if err := n.fsm.stopped(); err != nil {
		return 0, fmt.Errorf("raftkv: no backup: %w", err)
	}
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return 0, mapRaftErr(err)
	}
	var rc io.ReadCloser
	if err := f.Error(); err == nil {
		_, r, err := f.Open()
		if err != nil {
			return 0, err
		}
		rc = r
	} else { // nothing new since the last snapshot: it is current
		r, err := n.latestSnapshot()
		if err != nil {
			return 0, err
		}
		rc = r
	}
	defer rc.Close()
	return io.Copy(w, ctxReader{ctx, rc})
}

func (n *Node) latestSnapshot() (io.ReadCloser, error) {
	list, err := n.snaps.List()
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, errors.New("raftkv: no snapshot to back up")
	}
	_, rc, err := n.snaps.Open(list[0].ID)
	return rc, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Restore replaces the whole cluster's state with a backup. It must run on
// the leader; the backup is verified completely before anything changes, then
// installed through Raft (followers receive it as a snapshot).
func (n *Node) Restore(ctx context.Context, r io.Reader) error {
	if !n.isLeader() {
		return fmt.Errorf("%w: restore must be sent to the leader", ErrNotLeader)
	}
	tmp, err := os.CreateTemp(n.cfg.DataDir, "restore-*.snap")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("raftkv: reading backup: %w", err)
	}
	if err := verifySnapshot(tmp); err != nil {
		return err
	}
	// Raft installs a user snapshot at max(its last index, meta.Index)+1.
	// Choosing meta.Index ahead of the log (by more than can be appended
	// meanwhile) fixes that index, so the header can state it exactly and
	// every node, followers included, restores the right applied index.
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: n.raft.LastIndex() + 1<<16}
	restored, err := n.rewriteBackup(tmp, meta.Index+1)
	if err != nil {
		return err
	}
	defer os.Remove(restored.Name())
	defer restored.Close()
	fi, err := restored.Stat()
	if err != nil {
		return err
	}
	meta.Size = fi.Size()
	if err := n.raft.Restore(meta, restored, n.timeout(ctx)); err != nil {
		return mapRaftErr(err)
	}
	n.log.Info("restored backup", "bytes", size)
	return nil
}

// rewriteBackup copies a verified backup with its header adapted to this
// cluster: the trust list stays this cluster's own (the backup's would lock
// the members out of each other) and the applied index is the one Raft will
// give the restored snapshot.
func (n *Node) rewriteBackup(src *os.File, applied uint64) (*os.File, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(src, 1<<20)
	h, err := readSnapshotHeader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	h.Applied, h.Trust, h.Revoked = applied, nil, n.trust.Revoked()
	for _, e := range n.trust.Entries() {
		h.Trust = append(h.Trust, trustChange{NodeID: e.NodeID, Key: string(ssh.MarshalAuthorizedKey(e.Key))})
	}
	dst, err := os.CreateTemp(n.cfg.DataDir, "restore-*.snap")
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	if err := writeSnapshotHeader(bw, &h); err == nil {
		if _, err = io.Copy(bw, br); err == nil {
			err = bw.Flush()
		}
	}
	if err == nil {
		_, err = dst.Seek(0, io.SeekStart)
	}
	if err != nil {
		dst.Close()
		os.Remove(dst.Name())
		return nil, err
	}
	return dst, nil
}

// verifySnapshot reads a whole snapshot and checks every checksum without
// changing anything.
func verifySnapshot(f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := readSnapshotHeader(f); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := state.New().Restore(f); err != nil {
		return fmt.Errorf("%w: %v: %v", ErrInvalid, ErrCorruptSnapshot, err)
	}
	return nil
}

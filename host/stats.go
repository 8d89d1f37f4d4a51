package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/fsm"
)

// Stats is a snapshot of a node's status.
type Stats struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string `json:"leader"`
	LeaderAddr   string `json:"leader_address"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Ready        bool   `json:"ready"`               // see Node.Ready
	NotReady     string `json:"not_ready,omitempty"` // why it is not ready
	Failure      string `json:"failure,omitempty"`   // why the node stopped applying, if it did
	Degraded     string `json:"degraded,omitempty"`  // why the node cannot write its Raft log, while it cannot
	// Divergence lists the plugins whose state this node found to differ
	// from another node's at the same index (digestcheck.go); DivergenceSummary
	// says it in a sentence ("" when none).
	Divergence        []Divergence      `json:"divergence,omitempty"`
	DivergenceSummary string            `json:"divergence_summary,omitempty"`
	Plugins           []PluginInfo      `json:"plugins"`
	LogStore          string            `json:"log_store"` // LogStoreWAL or LogStoreBolt
	Raft              map[string]string `json:"raft"`
}

// Stats returns the node's status.
func (n *Node) Stats() Stats {
	rs := n.raft.Stats()
	leaderAddr, leaderID := n.raft.LeaderWithID()
	s := Stats{
		NodeID: n.cfg.NodeID, State: n.raft.State().String(), Leader: string(leaderID), LeaderAddr: string(leaderAddr),
		LastIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.Applied(),
		Plugins: n.Plugins(), LogStore: n.logStoreKind, Raft: rs,
	}
	// Raft's own entries (an election's no-op, barriers) never reach the
	// state machine: when only they follow, the state reflects the commit
	// index, and a status that said otherwise would show a lag forever.
	if s.AppliedIndex < s.CommitIndex && n.onlyHostEntries(s.AppliedIndex+1, s.CommitIndex) {
		s.AppliedIndex = s.CommitIndex
	}
	s.Term, _ = strconv.ParseUint(rs["term"], 10, 64)
	s.Failure = n.fsm.Failure()
	s.Degraded = n.degraded()
	s.Divergence, s.DivergenceSummary = n.diverged.list(), n.divergenceSummary()
	s.NotReady = n.readiness()
	s.Ready = s.NotReady == ""
	return s
}

// degraded returns why the node cannot persist its Raft log ("" while it
// can): the error of its last write, if no write has succeeded since.
// Writes resume by themselves once the disk has room again: a follower
// refuses AppendEntries meanwhile and the leader sends them again.
func (n *Node) degraded() string { return n.Degraded() }

// Degraded returns why the node cannot write its Raft log, "" while it can
// (Stats().Degraded; /healthz answers 503 degraded with it).
func (n *Node) Degraded() string {
	since, err := n.watched.WriteError()
	if err == nil {
		return ""
	}
	return fmt.Sprintf("%v (failing since %s)", err, since.UTC().Format(time.RFC3339))
}

// Ready reports whether the node serves reads that reflect the cluster: it
// applies the log (no fail-stop), has loaded the default plugin, knows a
// leader, and either leads in a term whose barrier it applied, or follows a
// leader it heard from within twice HeartbeatTimeout (past that, Raft
// itself gives the leader up) and has applied the
// leader's commit index as of HeartbeatTimeout ago (it learns that index
// from the leader's AppendEntries requests: a restarted node is not ready
// before the leader has told it), and no more than the highest commit
// index the leader sent over the last HeartbeatTimeout (beyond it, its log
// diverged from the leader's). Otherwise it returns why not.
func (n *Node) Ready() (bool, string) {
	why := n.readiness()
	return why == "", why
}

// Backup writes a consistent snapshot of this node's state machine (every
// plugin namespace, the active modules and the trust list, with checksums)
// to w. Run it on the leader after a linearizable read for the latest state.
// A node that stopped applying the log (fail-stop) refuses with ErrStopped.
func (n *Node) Backup(ctx context.Context, w io.Writer) (int64, error) {
	// A fail-stopped node has no consistent state to offer past the failure,
	// and its FSM, stuck, would never answer Raft's snapshot request.
	if err := n.fsm.Stopped(); err != nil {
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

// restoreTemp names the copies of a backup Restore keeps in the data
// directory while it checks and installs it.
const restoreTemp = "restore-*.snap"

// removeRestoreTemps removes the copies a restore left in dir: a node killed
// during one leaves them (each the backup's size), and nothing else names
// them. It runs once the node owns dir, before any restore can start.
func removeRestoreTemps(dir string, log *slog.Logger) {
	left, _ := filepath.Glob(filepath.Join(dir, restoreTemp))
	for _, f := range left {
		if err := os.Remove(f); err != nil {
			log.Warn("data dir: cannot remove an interrupted restore's copy of its backup", "path", f, "err", err)
		} else {
			log.Info("data dir: removed an interrupted restore's copy of its backup", "path", f)
		}
	}
}

// Restore replaces the whole cluster's state with a backup. It must run on
// the leader; the backup is verified completely before anything changes, then
// installed through Raft (followers receive it as a snapshot).
func (n *Node) Restore(ctx context.Context, r io.Reader) error {
	if !n.isLeader() {
		return fmt.Errorf("%w: restore must be sent to the leader", ErrNotLeader)
	}
	tmp, err := os.CreateTemp(n.cfg.DataDir, restoreTemp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("raftkv: reading backup: %w", err)
	}
	if err := fsm.VerifySnapshot(tmp); err != nil {
		return err
	}
	if err := n.validateBackupPlugins(ctx, tmp); err != nil {
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
	h, err := fsm.ReadSnapshotHeader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	h.Applied, h.Trust, h.Revoked = applied, nil, n.trust.Revoked()
	for _, e := range n.trust.Entries() {
		h.Trust = append(h.Trust, fsm.TrustChange{NodeID: e.NodeID, Key: string(ssh.MarshalAuthorizedKey(e.Key))})
	}
	dst, err := os.CreateTemp(n.cfg.DataDir, restoreTemp)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	if err := fsm.WriteSnapshotHeader(bw, &h); err == nil {
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

// validateBackupPlugins loads every module of a verified backup with its
// limits, exactly as a deploy would, before anything is replaced: a
// module this node refuses (invalid, a WASI command, limits out of range
// or past this node's memory cap, an initialiser that fails) refuses the
// restore with ErrInvalid. Raft would otherwise hand it to the state
// machine, whose failure to load it is fatal to a user restore.
func (n *Node) validateBackupPlugins(ctx context.Context, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h, err := fsm.ReadSnapshotHeader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var active []PluginInfo
	for _, sp := range h.Plugins {
		if err := checkPluginLimits(active, sp.Name, len(sp.Wasm)); err != nil {
			return fmt.Errorf("%w: backup: %w", ErrInvalid, err)
		}
		active = append(active, PluginInfo{Name: sp.Name, Size: len(sp.Wasm)})
		lim, err := n.checkLimits(sp.LimitsOrDefault())
		if err != nil {
			return fmt.Errorf("%w: backup: plugin %q: %w", ErrInvalid, sp.Name, err)
		}
		mod, err := n.rt.Load(ctx, sp.Wasm, plugin.LoadOptions{Name: sp.Name, Limits: lim})
		if err != nil {
			return fmt.Errorf("%w: backup: plugin %q: the module is refused, nothing was restored: %w", ErrInvalid, sp.Name, err)
		}
		mod.Close(ctx)
	}
	return nil
}

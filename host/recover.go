package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/fsm"
)

// PeersFile is the quorum-loss recovery file: when a node starts and finds
// it in its data directory, it replaces the node's Raft configuration with
// the servers it lists (hashicorp/raft's peers.json format:
// [{"id": "n1", "address": "10.0.0.1:7000", "non_voter": false}]) before
// Raft starts, and renames the file to peers.json.recovered-<time>. This
// is raft.RecoverCluster: every entry in the node's log is taken as
// committed. See docs/operations.md, "Recovering from quorum loss".
const PeersFile = "peers.json"

// recoverFromPeersFile applies PeersFile, if present.
func (n *Node) recoverFromPeersFile(rc *raft.Config, logs raft.LogStore, snaps raft.SnapshotStore, existing bool) error {
	path := filepath.Join(n.cfg.DataDir, PeersFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if !existing {
		return fmt.Errorf("raftkv: %s: the data directory has no Raft state to recover; remove the file", path)
	}
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("raftkv: %s: %w", path, err)
	}
	// RecoverCluster replays the log into the FSM it is given and leaves
	// that FSM unusable: give it a scratch one, with a trust list of its own.
	scratch := fsm.New(fsm.Config{
		Log: n.log, Runtime: n.rt, Trust: &trust.Trust{}, QueryInstances: 1, Natives: n.cfg.natives,
		OnPeers: func(raft.Configuration) {}, Metrics: n.metrics.fsm,
	})
	err = raft.RecoverCluster(rc, scratch, logs, n.logStore, snaps, n.ntrans, conf)
	scratch.Close()
	if err != nil {
		return fmt.Errorf("raftkv: recovering from %s: %w", path, err)
	}
	done := fmt.Sprintf("%s.recovered-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, done); err != nil {
		return fmt.Errorf("raftkv: recovered from %s, but renaming it failed (remove it before the next start): %w", path, err)
	}
	n.log.Warn("recovered from quorum loss: the Raft configuration is now the one in "+PeersFile, "servers", fmt.Sprint(conf.Servers), "renamed_to", done)
	return nil
}

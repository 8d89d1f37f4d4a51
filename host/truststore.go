package host

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/raftkv/raftkv/host/logstore"
	"github.com/raftkv/raftkv/host/trust"
)

// The node's side of the trust list's cache, trust.json: the format, and why
// it records a log index, are package trust's (host/trust/cache.go).

// saveTrust is the FSM's hook for trust changes. An entry cannot fail because
// a local file could not be written, so the error is logged: the node keeps
// running on the list in memory, and a restart starts from the previous file
// and catches up from the log.
func (n *Node) saveTrust(index uint64) {
	if err := n.writeTrust(index); err != nil {
		n.log.Error("saving the trust list failed; a restart may not reconnect", "err", err)
	}
}

// writeTrust writes the current trust list, as of index, to trust.json
// (trust.WriteCache: atomic and durable). The list is read under the lock,
// so the last writer writes the latest list.
func (n *Node) writeTrust(index uint64) error {
	n.trustFileMu.Lock()
	defer n.trustFileMu.Unlock()
	c := trust.Cache{Entries: n.trust.Entries(), Revoked: n.trust.Revoked(), Index: index}
	if err := trust.WriteCache(n.cfg.DataDir, c); err != nil {
		return fmt.Errorf("raftkv: %w", err)
	}
	return nil
}

// loadTrust reads the cached trust list, if there is one, into n.trust, and
// removes the temporary files of writes a crash interrupted.
func (n *Node) loadTrust() error {
	c, ok, err := trust.ReadCache(n.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("raftkv: %w", err)
	}
	if !ok {
		return nil
	}
	if err := n.trust.Set(c.Entries); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trust.CacheFile, err)
	}
	for _, id := range c.Revoked {
		n.trust.Revoke(id)
	}
	n.trustIndex = c.Index
	return nil
}

// FormerMember returns the other nodes that the trust list cached in
// dataDir names when dataDir holds no Raft log: the data dir of a member
// whose log was moved aside (to recover from a diverged log,
// docs/operations.md). Bootstrapping it would start a second cluster, empty
// and ready, beside the one it belonged to. Nil when there is a log, or no
// readable trust list.
func FormerMember(dataDir, nodeID string) []string {
	for _, f := range []string{logstore.BoltFile, logstore.WALDir} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			return nil
		}
	}
	return trust.CachedPeers(dataDir, nodeID)
}

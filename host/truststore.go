package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/raftkv/raftkv/host/logstore"
	"github.com/raftkv/raftkv/host/trust"
)

// trustFile caches the replicated trust list in the data directory. A
// restarted node must accept its peers' connections before Raft can replay
// the log (which is where the list comes from), so the last list it applied
// is kept on disk.
const trustFile = "trust.json"

// trustTempPattern names the temporary files trust.json is written through
// (os.CreateTemp); one left by a crash is removed at the next start.
const trustTempPattern = trustFile + ".*.tmp"

type trustCache struct {
	Trust   []string `json:"trust"`   // authorized_keys lines with the node ID as comment
	Revoked []string `json:"revoked"` // node IDs whose keys are refused
	// Index is the log index the list is as of (absent in files of
	// earlier versions: 0). A restart that restores an older snapshot
	// keeps this list (fsm.trustFloor).
	Index uint64 `json:"index,omitempty"`
}

// saveTrust is the FSM's hook for trust changes. An entry cannot fail because
// a local file could not be written, so the error is logged: the node keeps
// running on the list in memory, and a restart starts from the previous file
// and catches up from the log.
func (n *Node) saveTrust(index uint64) {
	if err := n.writeTrust(index); err != nil {
		n.log.Error("saving the trust list failed; a restart may not reconnect", "err", err)
	}
}

// writeTrust writes the current trust list to trust.json, atomically and
// durably: a temporary file in the data directory is written and synced,
// renamed over trust.json, and the directory synced. The list is read under
// the lock, so the last writer writes the latest list.
func (n *Node) writeTrust(index uint64) (err error) {
	n.trustFileMu.Lock()
	defer n.trustFileMu.Unlock()
	c := trustCache{Trust: []string{}, Revoked: n.trust.Revoked(), Index: index}
	for _, e := range n.trust.Entries() {
		c.Trust = append(c.Trust, e.String())
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	f, err := os.CreateTemp(n.cfg.DataDir, trustTempPattern)
	if err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	if err = os.Rename(f.Name(), filepath.Join(n.cfg.DataDir, trustFile)); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	if err := syncDir(n.cfg.DataDir); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadTrust reads the cached trust list, if there is one, and removes the
// temporary files of writes a crash interrupted.
func (n *Node) loadTrust() error {
	leftovers, err := filepath.Glob(filepath.Join(n.cfg.DataDir, trustTempPattern))
	if err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("raftkv: removing an interrupted write of %s: %w", trustFile, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(n.cfg.DataDir, trustFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	var c trustCache
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	var entries []trust.Entry
	for _, l := range c.Trust {
		e, err := trust.ParseTrustLine(l)
		if err != nil {
			return fmt.Errorf("raftkv: %s: %w", trustFile, err)
		}
		entries = append(entries, e)
	}
	if err := n.trust.Set(entries); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
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
	data, err := os.ReadFile(filepath.Join(dataDir, trustFile))
	if err != nil {
		return nil
	}
	var c trustCache
	if json.Unmarshal(data, &c) != nil {
		return nil
	}
	var others []string
	for _, l := range c.Trust {
		e, err := trust.ParseTrustLine(l)
		if err == nil && e.NodeID != nodeID && !slices.Contains(others, e.NodeID) {
			others = append(others, e.NodeID)
		}
	}
	return others
}

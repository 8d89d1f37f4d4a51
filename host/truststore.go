package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/raftkv/raftkv/host/transport"
)

// trustFile caches the replicated trust list in the data directory. A
// restarted node must accept its peers' connections before Raft can replay
// the log (which is where the list comes from), so the last list it applied
// is kept on disk.
const trustFile = "trust.json"

type trustCache struct {
	Trust   []string `json:"trust"`   // authorized_keys lines with the node ID as comment
	Revoked []string `json:"revoked"` // node IDs whose keys are refused
}

// saveTrust writes the current replicated trust list atomically.
func (n *Node) saveTrust() {
	c := trustCache{Revoked: n.trust.Revoked()}
	for _, e := range n.trust.Entries() {
		c.Trust = append(c.Trust, e.String())
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err == nil {
		path := filepath.Join(n.cfg.DataDir, trustFile)
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		n.log.Error("saving the trust list failed; a restart may not reconnect", "err", err)
	}
}

// loadTrust reads the cached trust list, if there is one.
func (n *Node) loadTrust() error {
	data, err := os.ReadFile(filepath.Join(n.cfg.DataDir, trustFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var c trustCache
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("raftkv: %s: %w", trustFile, err)
	}
	var entries []transport.Entry
	for _, l := range c.Trust {
		e, err := transport.ParseTrustLine(l)
		if err != nil {
			return fmt.Errorf("raftkv: %s: %w", trustFile, err)
		}
		entries = append(entries, e)
	}
	if err := n.trust.Set(entries); err != nil {
		return err
	}
	for _, id := range c.Revoked {
		n.trust.Revoke(id)
	}
	return nil
}

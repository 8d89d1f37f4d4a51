package trust

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Entry binds a public key to a node ID.
type Entry struct {
	NodeID string
	Key    ssh.PublicKey
}

// String returns the entry as an authorized_keys line.
func (e Entry) String() string { return TrustLine(e.Key, e.NodeID) }

// Trust is the set of public keys this node accepts, each bound to a node ID.
// It is safe for concurrent use; the zero value is an empty Trust.
//
// Keys come from two sources: the operator's authorized_keys file
// (LoadAuthorizedKeys) and the replicated set the node maintains from the
// Raft log (Set, Add, Remove). A key is trusted for node N when either source
// binds it to N, no source binds it to another node (a key bound to two
// nodes is trusted for neither) and N is not revoked. Revoke makes a removed
// node's keys untrusted even when they are still in the file; Set or Add for
// that node lifts the revocation.
//
// Keys are compared by their marshalled wire bytes, which for the keys the
// transport looks up are the keys the peer proved it holds in the SSH
// handshake. The transport watches its Trust (Changed) and closes live
// connections to and from peers whose keys stop being trusted.
type Trust struct {
	mu         sync.RWMutex
	file       []Entry
	replicated []Entry
	revoked    map[string]bool
	index      map[string]binding // marshalled key -> binding
	changedCh  chan struct{}      // closed and replaced on every change
}

type binding struct {
	nodeID    string
	ambiguous bool // bound to more than one node ID
	stale     bool // from the file only, for an ID whose keys the replicated list names (others)
}

// NodeFor returns the node ID key is trusted for.
func (t *Trust) NodeFor(key ssh.PublicKey) (nodeID string, ok bool) {
	nodeID, why := t.Lookup(key)
	if why != "" {
		return "", false
	}
	return nodeID, true
}

// Lookup returns the node key is bound to and, when the key is not
// trusted, why not: a phrase that follows the key in a message ("is not
// trusted", "belongs to revoked node …"). The transport logs it when it
// refuses a peer.
func (t *Trust) Lookup(key ssh.PublicKey) (nodeID, whyNot string) {
	if key == nil {
		return "", "no key"
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	b, found := t.index[string(key.Marshal())]
	switch {
	case !found:
		return "", "is not trusted"
	case b.ambiguous:
		return "", "is bound to more than one node ID"
	case b.stale:
		return b.nodeID, fmt.Sprintf("is in authorized_keys for %q, but the replicated trust list names other keys for it", b.nodeID)
	case t.revoked[b.nodeID]:
		return b.nodeID, fmt.Sprintf("belongs to revoked node %q", b.nodeID)
	}
	return b.nodeID, ""
}

// LoadAuthorizedKeys replaces the file-sourced entries with those of the
// authorized_keys file at path (see ParseAuthorizedKeys). A missing file
// counts as empty. On error the previous entries stay in place.
func (t *Trust) LoadAuthorizedKeys(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		return err
	}
	entries, err := ParseAuthorizedKeys(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.file = entries
	t.changedLocked()
	return nil
}

// Set replaces the replicated entries and lifts the revocation of every node
// it names. It fails, changing nothing, when an entry is invalid or one key
// is given for two node IDs.
func (t *Trust) Set(entries []Entry) error {
	clean, err := normalize(entries)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.replicated = clean
	for _, e := range clean {
		delete(t.revoked, e.NodeID)
	}
	t.changedLocked()
	return nil
}

// Add binds key to nodeID in the replicated set (a node may have several
// keys) and lifts a revocation of nodeID. It fails when the replicated set
// already binds key to another node.
func (t *Trust) Add(nodeID string, key ssh.PublicKey) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	clean, err := normalize(append(slices.Clone(t.replicated), Entry{NodeID: nodeID, Key: key}))
	if err != nil {
		return err
	}
	t.replicated = clean
	delete(t.revoked, nodeID)
	t.changedLocked()
	return nil
}

// Remove drops nodeID's replicated entries. Keys for it in the
// authorized_keys file stay trusted; use Revoke to refuse those too.
func (t *Trust) Remove(nodeID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(nodeID)
	t.changedLocked()
}

// Revoke drops nodeID's replicated entries and refuses its keys from any
// source until Set or Add names nodeID again.
func (t *Trust) Revoke(nodeID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(nodeID)
	if t.revoked == nil {
		t.revoked = make(map[string]bool)
	}
	t.revoked[nodeID] = true
	t.changedLocked()
}

// Trusts reports whether a key is trusted for nodeID, from the
// authorized_keys file or the replicated list (not revoked, not bound to
// another node ID as well).
func (t *Trust) Trusts(nodeID string) bool { return len(t.Keys(nodeID)) > 0 }

// Keys returns the distinct keys trusted for nodeID (see Trusts).
func (t *Trust) Keys(nodeID string) []ssh.PublicKey {
	t.mu.RLock()
	var keys []ssh.PublicKey
	for _, src := range [][]Entry{t.file, t.replicated} {
		for _, e := range src {
			if e.NodeID == nodeID {
				keys = append(keys, e.Key)
			}
		}
	}
	t.mu.RUnlock()
	var out []ssh.PublicKey
	seen := map[string]bool{}
	for _, k := range keys {
		if id, ok := t.NodeFor(k); ok && id == nodeID && !seen[string(k.Marshal())] {
			seen[string(k.Marshal())] = true
			out = append(out, k)
		}
	}
	return out
}

// Entries returns the replicated entries, sorted by node ID and key.
func (t *Trust) Entries() []Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Clone(t.replicated)
}

// Revoked returns the revoked node IDs, sorted.
func (t *Trust) Revoked() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ids := make([]string, 0, len(t.revoked))
	for id := range t.revoked {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Changed returns a channel that is closed at the next change of t (a load
// of the file, Set, Add, Remove, Revoke). Take a new channel before looking
// at t again, so that no change is missed.
func (t *Trust) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changedCh == nil {
		t.changedCh = make(chan struct{})
	}
	return t.changedCh
}

func (t *Trust) removeLocked(nodeID string) {
	t.replicated = slices.DeleteFunc(slices.Clone(t.replicated), func(e Entry) bool { return e.NodeID == nodeID })
}

// changedLocked rebuilds the key index and wakes watchers.
//
// Once the replicated list names a node ID, its keys are that ID's: a key
// the authorized_keys file gives for the ID and the list does not is stale
// (trusted for nobody). Otherwise a key left in some node's file would come
// back when the ID is trusted again through the log after a revocation
// (Add lifts it), on that node only.
func (t *Trust) changedLocked() {
	named := make(map[string]bool, len(t.replicated))
	for _, e := range t.replicated {
		named[e.NodeID] = true
	}
	index := make(map[string]binding, len(t.file)+len(t.replicated))
	for i, src := range [][]Entry{t.file, t.replicated} {
		for _, e := range src {
			k := string(e.Key.Marshal())
			stale := i == 0 && named[e.NodeID]
			if b, ok := index[k]; ok {
				if b.nodeID != e.NodeID {
					b.ambiguous = true
				} else {
					b.stale = b.stale && stale // listed in both: not stale
				}
				index[k] = b
				continue
			}
			index[k] = binding{nodeID: e.NodeID, stale: stale}
		}
	}
	t.index = index
	if t.changedCh != nil {
		close(t.changedCh)
	}
	t.changedCh = make(chan struct{})
}

// normalize validates entries, drops exact duplicates and sorts them.
func normalize(entries []Entry) ([]Entry, error) {
	out := make([]Entry, 0, len(entries))
	owner := make(map[string]string, len(entries))
	for _, e := range entries {
		if err := ValidateNodeID(e.NodeID); err != nil {
			return nil, err
		}
		if e.Key == nil {
			return nil, fmt.Errorf("%w: node %q has no key", ErrInvalidTrustLine, e.NodeID)
		}
		k := string(e.Key.Marshal())
		if prev, ok := owner[k]; ok {
			if prev != e.NodeID {
				return nil, fmt.Errorf("%w: key %s is given for %q and %q", ErrKeyConflict, ssh.FingerprintSHA256(e.Key), prev, e.NodeID)
			}
			continue
		}
		owner[k] = e.NodeID
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := strings.Compare(a.NodeID, b.NodeID); c != 0 {
			return c
		}
		return bytes.Compare(a.Key.Marshal(), b.Key.Marshal())
	})
	return out, nil
}

// ParseAuthorizedKeys parses an authorized_keys file in which the comment
// field of every key line is the node ID. Blank lines and lines starting
// with '#' are ignored. A line without a node ID, with options or with a
// malformed key is an error naming its line number, as is one key bound to
// two node IDs.
func ParseAuthorizedKeys(data []byte) ([]Entry, error) {
	var entries []Entry
	type seen struct {
		line   int
		nodeID string
	}
	first := make(map[string]seen)
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := ParseTrustLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		k := string(e.Key.Marshal())
		if prev, ok := first[k]; ok {
			if prev.nodeID != e.NodeID {
				return nil, fmt.Errorf("line %d: %w: key %s is bound to %q on line %d and to %q here",
					n, ErrKeyConflict, ssh.FingerprintSHA256(e.Key), prev.nodeID, prev.line, e.NodeID)
			}
			continue
		}
		first[k] = seen{line: n, nodeID: e.NodeID}
		entries = append(entries, e)
	}
	return entries, nil
}

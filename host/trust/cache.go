package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// CacheFile is the name of the trust list's cache in a node's data
// directory. A restarted node must accept its peers' connections before
// Raft can replay the log (which is where the replicated list comes from),
// so the last list it applied is kept on disk.
const CacheFile = "trust.json"

// cacheTempPattern names the temporary files trust.json is written through
// (os.CreateTemp); one left by a crash is removed by the next ReadCache.
const cacheTempPattern = CacheFile + ".*.tmp"

// Cache is the replicated trust list as of a log index: what trust.json
// holds.
type Cache struct {
	Entries []Entry  // the replicated entries (Trust.Entries)
	Revoked []string // the revoked node IDs (Trust.Revoked)
	// Index is the log index the list is as of; 0 in files of versions
	// that did not record it. A restart that restores a snapshot older
	// than Index keeps this list (the trust floor, see the package doc).
	Index uint64
}

// cacheFile is trust.json's layout.
type cacheFile struct {
	Trust   []string `json:"trust"`   // authorized_keys lines with the node ID as comment
	Revoked []string `json:"revoked"` // node IDs whose keys are refused
	Index   uint64   `json:"index,omitempty"`
}

// WriteCache writes c to dir/trust.json, atomically and durably: a
// temporary file in dir is written and synced, renamed over trust.json,
// and dir synced. A reader, or a restart after a crash, sees the previous
// file or the new one, whole. Concurrent writers must be serialised by the
// caller, or the last rename may not carry the latest list.
func WriteCache(dir string, c Cache) (err error) {
	f := cacheFile{Trust: []string{}, Revoked: c.Revoked, Index: c.Index}
	if f.Revoked == nil {
		f.Revoked = []string{}
	}
	for _, e := range c.Entries {
		f.Trust = append(f.Trust, e.String())
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", CacheFile, err)
	}
	tmp, err := os.CreateTemp(dir, cacheTempPattern)
	if err != nil {
		return fmt.Errorf("%s: %w", CacheFile, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("%s: %w", CacheFile, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", CacheFile, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", CacheFile, err)
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, CacheFile)); err != nil {
		return fmt.Errorf("%s: %w", CacheFile, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s: %w", CacheFile, err)
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

// ReadCache removes the temporary files of writes of dir/trust.json that a
// crash interrupted, then reads trust.json. ok is false, with a nil error,
// when there is no such file. Every line must parse (ParseTrustLine); the
// entries are not checked against each other (Trust.Set does that).
func ReadCache(dir string) (c Cache, ok bool, err error) {
	leftovers, err := filepath.Glob(filepath.Join(dir, cacheTempPattern))
	if err != nil {
		return Cache{}, false, fmt.Errorf("%s: %w", CacheFile, err)
	}
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Cache{}, false, fmt.Errorf("removing an interrupted write of %s: %w", CacheFile, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, CacheFile))
	if errors.Is(err, os.ErrNotExist) {
		return Cache{}, false, nil
	}
	if err != nil {
		return Cache{}, false, fmt.Errorf("%s: %w", CacheFile, err)
	}
	var f cacheFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Cache{}, false, fmt.Errorf("%s: %w", CacheFile, err)
	}
	c = Cache{Revoked: f.Revoked, Index: f.Index}
	for _, l := range f.Trust {
		e, err := ParseTrustLine(l)
		if err != nil {
			return Cache{}, false, fmt.Errorf("%s: %w", CacheFile, err)
		}
		c.Entries = append(c.Entries, e)
	}
	return c, true, nil
}

// CachedPeers returns the node IDs other than self that dir/trust.json
// binds keys to, each once, in the file's order; nil when there is no
// readable file. Lines that do not parse are skipped: this is a hint for a
// decision at start (host.FormerMember), not the list a node trusts.
// Unlike ReadCache it changes nothing in dir.
func CachedPeers(dir, self string) []string {
	data, err := os.ReadFile(filepath.Join(dir, CacheFile))
	if err != nil {
		return nil
	}
	var f cacheFile
	if json.Unmarshal(data, &f) != nil {
		return nil
	}
	var others []string
	for _, l := range f.Trust {
		e, err := ParseTrustLine(l)
		if err == nil && e.NodeID != self && !slices.Contains(others, e.NodeID) {
			others = append(others, e.NodeID)
		}
	}
	return others
}

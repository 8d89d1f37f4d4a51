package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/raftkv/raftkv/host/state"
)

// BackupInfo describes a backup (or snapshot) file, as InspectBackup reads
// it.
type BackupInfo struct {
	FormatVersion int            `json:"format_version"`
	AppliedIndex  uint64         `json:"applied_index"` // the last log entry the state includes
	Time          time.Time      `json:"time,omitzero"` // the leader's time of that entry
	Bytes         int64          `json:"bytes"`
	SHA256        string         `json:"sha256"` // of the whole file
	Plugins       []BackupPlugin `json:"plugins"`
	// Namespaces lists every state namespace with its key count and
	// digest: the plugins' and those a removed plugin left behind.
	Namespaces []BackupNamespace `json:"namespaces"`
	Keys       int               `json:"keys"`
	// IdempotencyKeys counts the recent writes' idempotency keys the
	// backup holds (sessions.go); they are not in Namespaces or Keys.
	IdempotencyKeys int      `json:"idempotency_keys"`
	Trust           []string `json:"trust"` // the node IDs the backup trusted (a restore keeps the cluster's own)
}

// BackupPlugin is an active plugin's module in a backup.
type BackupPlugin struct {
	Name        string `json:"name"`
	Hash        string `json:"hash"` // sha256 of the module, checked against its bytes
	Size        int    `json:"size"`
	ActiveSince uint64 `json:"active_since"`
}

// BackupNamespace is one namespace of a backup's state.
type BackupNamespace struct {
	Name   string `json:"name"`
	Keys   int    `json:"keys"`
	Digest string `json:"digest"` // as GET /v1/plugins/{name}/digest computes it
}

// InspectBackup reads a whole backup, verifies every checksum (the header's,
// each module's hash, the state stream's) and describes it. It changes
// nothing; a backup that fails verification is an ErrCorruptSnapshot error.
func InspectBackup(r io.Reader) (BackupInfo, error) {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h)}
	br := bufio.NewReaderSize(cr, 1<<20)
	hdr, err := ReadSnapshotHeader(br)
	if err != nil {
		return BackupInfo{}, err
	}
	info := BackupInfo{FormatVersion: hdr.Version, AppliedIndex: hdr.Applied, Plugins: []BackupPlugin{}, Namespaces: []BackupNamespace{}}
	if hdr.LastTime > 0 {
		info.Time = time.Unix(0, hdr.LastTime).UTC()
	}
	for _, p := range hdr.Plugins {
		info.Plugins = append(info.Plugins, BackupPlugin{Name: p.Name, Hash: p.Hash, Size: len(p.Wasm), ActiveSince: p.Since})
	}
	for _, t := range hdr.Trust {
		info.Trust = append(info.Trust, t.NodeID)
	}
	st := state.New()
	if err := st.Restore(br); err != nil {
		return BackupInfo{}, wrapCorrupt(err)
	}
	if err := atEnd(br); err != nil { // nothing follows the state in a backup raftkv wrote
		return BackupInfo{}, wrapCorrupt(err)
	}
	view := st.View()
	names := st.Names()
	sort.Strings(names)
	for _, name := range names {
		ns, ok := view.Namespace(name)
		if !ok {
			continue
		}
		if name == SessionsNamespace {
			info.IdempotencyKeys = ns.Len() / 2
			continue
		}
		sum := ns.Digest()
		info.Namespaces = append(info.Namespaces, BackupNamespace{Name: name, Keys: ns.Len(), Digest: hex.EncodeToString(sum[:])})
		info.Keys += ns.Len()
	}
	info.Bytes, info.SHA256 = cr.n, hex.EncodeToString(h.Sum(nil))
	return info, nil
}

func wrapCorrupt(err error) error {
	return &corruptError{err}
}

type corruptError struct{ err error }

func (e *corruptError) Error() string {
	return ErrCorruptSnapshot.Error() + ": " + e.err.Error() // e.err's says "state: "
}
func (e *corruptError) Unwrap() []error { return []error{ErrCorruptSnapshot, e.err} }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// VerifySnapshot reads a whole snapshot (or backup) from its start and
// checks every checksum, and that nothing follows the state, without
// changing anything. A failure is ErrInvalid (a backup sent for a restore
// is a request).
func VerifySnapshot(f io.ReadSeeker) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if _, err := ReadSnapshotHeader(br); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := state.New().Restore(br); err != nil {
		return fmt.Errorf("%w: %v: %v", ErrInvalid, ErrCorruptSnapshot, err)
	}
	if err := atEnd(br); err != nil {
		return fmt.Errorf("%w: %v: %v", ErrInvalid, ErrCorruptSnapshot, err)
	}
	return nil
}

// atEnd checks that a backup has nothing after its state stream: a file with
// more (two backups concatenated, a stray byte) is not the backup raftkv
// wrote.
func atEnd(br *bufio.Reader) error {
	n, err := io.Copy(io.Discard, br)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d bytes after the end of the backup", n)
	}
	return nil
}

package fsm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/host/trust"
)

// Snapshot format (also the backup file format):
//
//	"RKVSNAP1"
//	u32 big-endian header length, MsgPack snapshotHeader, 32-byte sha256 of the header
//	the host state stream (host/state, with its own checksum)
//
// The header carries the active plugin modules (their bytes and hashes), the
// replicated trust list and the FSM's clock, so a node restored from a snapshot
// runs exactly the code that was active at its index.
const snapshotMagic = "RKVSNAP1"

// maxSnapshotHeader bounds the header, which a node reads into memory whole.
// The active modules are bounded by MaxPlugins and MaxPluginBytes (checked
// at deploy), so every snapshot a cluster writes fits with room to spare;
// the bound is as large as it was before those limits existed, so snapshots
// written then stay readable. A header that would exceed it is not written.
const maxSnapshotHeader = 16*abi.MaxModuleSize + (1 << 20)

// The header of a cluster at its plugin limits, with a trust list of
// thousands of nodes, fits well within the bound.
var _ [maxSnapshotHeader - (MaxPluginBytes + MaxPlugins*(1<<10) + (16 << 20))]struct{}

type SnapshotHeader struct {
	Version  int              `msgpack:"version"`
	Applied  uint64           `msgpack:"applied"` // index of the last entry applied
	LastTime int64            `msgpack:"last_time"`
	Plugins  []SnapshotPlugin `msgpack:"plugins"`
	Trust    []TrustChange    `msgpack:"trust"`
	Revoked  []string         `msgpack:"revoked"`
	// Addresses are the members' API and management addresses (absent in
	// snapshots written before they were replicated).
	Addresses []MemberAddresses `msgpack:"addresses,omitempty"`
}

type SnapshotPlugin struct {
	Name  string `msgpack:"name"`
	Hash  string `msgpack:"hash"`
	Since uint64 `msgpack:"since"`
	Wasm  []byte `msgpack:"wasm"`
	// Limits are the plugin's replicated limits; snapshots written before
	// they were replicated have none: the plugin gets the defaults.
	Limits      *plugin.Limits `msgpack:"limits,omitempty"`
	Quarantined bool           `msgpack:"quarantined,omitempty"`
}

// LimitsOrDefault returns the plugin's limits: the defaults if the snapshot has none.
func (p *SnapshotPlugin) LimitsOrDefault() plugin.Limits {
	if p.Limits == nil {
		return plugin.DefaultLimits()
	}
	return *p.Limits
}

type fsmSnapshot struct {
	header SnapshotHeader
	view   *state.View
}

// Snapshot captures the state in O(number of namespaces + plugins) on the FSM
// goroutine; Persist streams it concurrently with further applies. A
// fail-stopped FSM refuses: Raft labels a snapshot with the last index it
// handed over, which may be past the entry that failed, and a node restarted
// from such a snapshot would skip that entry forever.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.Stopped(); err != nil {
		return nil, fmt.Errorf("raftkv: no snapshot: %w", err)
	}
	s := &fsmSnapshot{view: f.store.View()}
	s.header = SnapshotHeader{Version: 1, Applied: f.applied.Load(), LastTime: f.lastTime, Revoked: f.trust.Revoked(), Addresses: f.sortedAddresses()}
	for _, p := range *f.plugins.Load() {
		lim := p.mod.Limits
		s.header.Plugins = append(s.header.Plugins, SnapshotPlugin{Name: p.name, Hash: p.mod.Hash, Since: p.since, Wasm: p.mod.Wasm, Limits: &lim, Quarantined: p.quarantined})
	}
	for _, e := range f.trust.Entries() {
		s.header.Trust = append(s.header.Trust, TrustChange{NodeID: e.NodeID, Key: string(ssh.MarshalAuthorizedKey(e.Key))})
	}
	return s, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := WriteSnapshotHeader(bw, &s.header); err != nil {
		return err
	}
	if _, err := s.view.WriteTo(bw); err != nil {
		return err
	}
	return bw.Flush()
}

func (s *fsmSnapshot) Release() {}

// WriteSnapshotHeader writes the magic, the header and its checksum.
func WriteSnapshotHeader(w *bufio.Writer, h *SnapshotHeader) error {
	hdr, err := abi.Marshal(h)
	if err != nil {
		return err
	}
	if len(hdr) > maxSnapshotHeader { // no snapshot that could not be read back
		return fmt.Errorf("raftkv: snapshot header of %d bytes exceeds the %d-byte limit (%d plugins)", len(hdr), maxSnapshotHeader, len(h.Plugins))
	}
	sum := sha256.Sum256(hdr)
	w.WriteString(snapshotMagic)
	binary.Write(w, binary.BigEndian, uint32(len(hdr)))
	w.Write(hdr)
	_, err = w.Write(sum[:])
	return err
}

// ReadSnapshotHeader reads and verifies the header of a snapshot stream.
func ReadSnapshotHeader(r io.Reader) (SnapshotHeader, error) {
	var h SnapshotHeader
	var pre [len(snapshotMagic) + 4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return h, fmt.Errorf("%w: reading header: %v", ErrCorruptSnapshot, err)
	}
	if string(pre[:len(snapshotMagic)]) != snapshotMagic {
		return h, fmt.Errorf("%w: not a raftkv snapshot (bad magic)", ErrCorruptSnapshot)
	}
	n := binary.BigEndian.Uint32(pre[len(snapshotMagic):])
	if n > maxSnapshotHeader {
		return h, fmt.Errorf("%w: header of %d bytes exceeds the limit", ErrCorruptSnapshot, n)
	}
	buf := make([]byte, int(n)+sha256.Size)
	if got, err := io.ReadFull(r, buf); errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return h, fmt.Errorf("%w: truncated: it ends inside its header (the plugins' modules), %d bytes of %d in", ErrCorruptSnapshot, got, len(buf))
	} else if err != nil {
		return h, fmt.Errorf("%w: reading header: %v", ErrCorruptSnapshot, err)
	}
	hdr, sum := buf[:n], buf[n:]
	if got := sha256.Sum256(hdr); string(got[:]) != string(sum) {
		return h, fmt.Errorf("%w: header checksum mismatch", ErrCorruptSnapshot)
	}
	if err := abi.Unmarshal(hdr, &h); err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrCorruptSnapshot, err)
	}
	if h.Version != 1 {
		return h, fmt.Errorf("%w: snapshot format version %d is not supported", ErrCorruptSnapshot, h.Version)
	}
	names := make(map[string]bool, len(h.Plugins))
	for _, p := range h.Plugins {
		if err := ValidPluginName(p.Name); err != nil || names[p.Name] {
			return h, fmt.Errorf("%w: bad or repeated plugin name %q", ErrCorruptSnapshot, p.Name)
		}
		names[p.Name] = true
		if plugin.HashOf(p.Wasm) != p.Hash {
			return h, fmt.Errorf("%w: module of plugin %q does not match its hash", ErrCorruptSnapshot, p.Name)
		}
	}
	return h, nil
}

// Restore replaces the whole FSM state with a snapshot. Everything is loaded
// and verified before anything is replaced: if Restore fails, the FSM is as it
// was and the modules it loaded are closed. A module whose initialiser runs
// past the time limit fail-stops the node (a faster node would restore it).
// A fail-stopped FSM refuses to restore: it changes nothing until restarted.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.Stopped(); err != nil {
		return fmt.Errorf("raftkv: no restore: %w", err)
	}
	br := bufio.NewReaderSize(rc, 1<<20)
	h, err := ReadSnapshotHeader(br)
	if err != nil {
		return err
	}
	var list []trust.Entry
	for _, t := range h.Trust {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(t.Key))
		if err != nil {
			return fmt.Errorf("%w: trust entry %s: %w", ErrCorruptSnapshot, t.NodeID, err)
		}
		list = append(list, trust.Entry{NodeID: t.NodeID, Key: key})
	}
	if err := (&trust.Trust{}).Set(list); err != nil { // what f.trust.Set below would refuse
		return fmt.Errorf("%w: trust: %w", ErrCorruptSnapshot, err)
	}
	ctx := context.Background()
	var loaded []*Plugin
	fail := func(err error) error {
		for _, p := range loaded {
			p.close(ctx)
		}
		return err
	}
	for _, sp := range h.Plugins {
		p, err := f.load(ctx, sp.Name, sp.Wasm, sp.LimitsOrDefault(), 0)
		if err != nil {
			err = fmt.Errorf("restore: plugin %q: %w", sp.Name, err)
			if stopsApplying(err) {
				f.failStop(fmt.Sprintf("restoring the snapshot at index %d", h.Applied), err)
			}
			return fail(err)
		}
		p.since, p.quarantined = sp.Since, sp.Quarantined
		loaded = append(loaded, p)
	}
	f.pgen.Add(1) // odd: readers wait until state and plugins are both replaced
	defer f.notifyApplied()
	defer f.pgen.Add(1)
	// Store.Restore verifies the whole stream before it replaces anything.
	if err := f.store.Restore(br); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrCorruptSnapshot, err))
	}
	f.store.Update(func() { f.applied.Store(h.Applied) })
	if h.Applied >= f.trustFloor {
		if err := f.trust.Set(list); err != nil { // checked above: cannot happen
			f.failStop(fmt.Sprintf("restoring the snapshot at index %d", h.Applied), err)
			return fail(fmt.Errorf("raftkv: restore: trust: %w", err))
		}
		for _, id := range h.Revoked {
			f.trust.Revoke(id)
		}
		f.trustChanged(h.Applied)
	} else {
		// A restart restores the node's latest snapshot, which may be
		// older than the trust list it had applied (host's trust.json). That
		// list is the committed one as of trustFloor, and the node needs
		// it to hear from the members it names: one that joined after the
		// snapshot may lead now, and the node learns the commit index,
		// and so replays its log, only from the leader. Going back to the
		// snapshot's list would refuse that leader for good. The entries
		// in between are applied again as the log is replayed; trust
		// changes bind or drop one node's keys, so applying them again
		// on their own result changes nothing.
		f.log.Info("keeping the trust list applied before the restart over the older snapshot's",
			"snapshot_index", h.Applied, "trust_index", f.trustFloor)
	}
	f.restoreAddresses(h.Addresses)
	f.lastTime = h.LastTime
	next := make(map[string]*Plugin, len(loaded))
	for _, p := range loaded {
		next[p.name] = p
	}
	old := *f.plugins.Swap(&next)
	for _, p := range old {
		p.close(ctx)
	}
	f.log.Info("restored snapshot", "plugins", len(loaded), "namespaces", len(f.store.Names()))
	return nil
}

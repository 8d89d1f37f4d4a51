package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/host/state"
)

// Writes that are safe to retry (the Raft thesis' client sessions, §6.3,
// keyed by request rather than by client).
//
// A command may carry an idempotency key (HTTP's Idempotency-Key, set by the
// client package and the CLI on every write). The FSM keeps a replicated
// table of recent keys and the results their commands produced. A command
// whose key is in the table is not applied again: it gets the recorded
// result. So a client that lost the answer to a write (a timeout, an
// unknown_outcome after a leader died, a dropped connection) sends the same
// write with the same key and gets the original answer, whether or not the
// first attempt was applied.
//
// The table lives in the host state, in the namespace SessionsNamespace
// (plugin names cannot start with '.'). A command's record is written in the
// same state update as the command's own writes, so it is in every snapshot
// and backup and is identical on every node. It is bounded, deterministically
// (by the entries' leader timestamps and by counts, never by a node's clock):
// a record is kept for SessionTTL of log time, and the oldest records go
// first beyond MaxSessions records or MaxSessionBytes bytes. A retry later
// than that is applied again.
//
// Keys in the namespace:
//
//	"k" + key           → [plugin, sha256(command)[:16], code, result]; version = the entry's index
//	"o" + u64be(index)  → u64be(entry time) + key, the eviction order
const (
	// SessionsNamespace is the table's namespace in the state.
	SessionsNamespace = ".sessions"
	// SessionTTL is how long, in the log's time, a key's result is kept.
	SessionTTL = 10 * time.Minute
	// MaxSessions is the most keys kept.
	MaxSessions = 100_000
	// MaxSessionBytes bounds the table's bytes (keys, results, overhead).
	MaxSessionBytes = 64 << 20
	// MaxIdempotencyKey is the longest idempotency key, in bytes.
	MaxIdempotencyKey = 128
)

// ValidIdempotencyKey checks an idempotency key: 1 to MaxIdempotencyKey
// printable ASCII characters (a UUID, or the client package's 32 hex digits).
func ValidIdempotencyKey(key string) error {
	if len(key) == 0 || len(key) > MaxIdempotencyKey {
		return fmt.Errorf("%w: idempotency key of %d bytes: want 1 to %d", ErrInvalid, len(key), MaxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return fmt.Errorf("%w: idempotency key: byte %d is not printable ASCII", ErrInvalid, i)
		}
	}
	return nil
}

// sessions is the FSM's view of the table. Used on the FSM goroutine only,
// inside the state update.
type sessions struct {
	st  *state.Store
	buf []byte
	// The bounds: SessionTTL, MaxSessions, MaxSessionBytes (every node must
	// use the same; only tests of this package change them).
	ttl      time.Duration
	maxKeys  int
	maxBytes int64
}

func newSessions(st *state.Store) sessions {
	return sessions{st: st, ttl: SessionTTL, maxKeys: MaxSessions, maxBytes: MaxSessionBytes}
}

func commandDigest(plugin string, cmd []byte) [16]byte {
	h := sha256.New()
	h.Write([]byte(plugin))
	h.Write([]byte{0})
	h.Write(cmd)
	var d [16]byte
	copy(d[:], h.Sum(nil))
	return d
}

// has reports whether key has a record.
func (s *sessions) has(key string) bool {
	ns, ok := s.st.Lookup(SessionsNamespace)
	if !ok {
		return false
	}
	s.buf = append(append(s.buf[:0], 'k'), key...)
	_, _, ok = ns.Get(s.buf)
	return ok
}

// lookup returns the recorded result of key. A key recorded for another
// command (another plugin or other bytes) is an error result: a client bug
// that must not silently return someone else's answer.
func (s *sessions) lookup(key, plugin string, cmd []byte) (*Result, bool) {
	ns, ok := s.st.Lookup(SessionsNamespace)
	if !ok {
		return nil, false
	}
	s.buf = append(append(s.buf[:0], 'k'), key...)
	v, _, ok := ns.Get(s.buf)
	if !ok {
		return nil, false
	}
	r := mp.NewReader(v)
	nameb, err1 := r.ReadBytes()
	name := string(nameb)
	digest, err2 := r.ReadBytes()
	code, err3 := r.ReadUint64()
	data, err4 := r.ReadBytes()
	if err := firstErr(err1, err2, err3, err4); err != nil {
		// Written by this file only: damage would be a bug; refuse loudly.
		return &Result{Err: fmt.Errorf("raftkv: idempotency record of key %q is unreadable: %v", key, err)}, true
	}
	want := commandDigest(plugin, cmd)
	if name != plugin || string(digest) != string(want[:]) {
		return &Result{Err: fmt.Errorf("%w: idempotency key %q was used for another request (plugin %q); use a new key for a new request", ErrInvalid, key, name)}, true
	}
	return &Result{Res: abi.Result{Code: abi.Code(code), Data: append([]byte(nil), data...)}}, true
}

// record keeps key's result, then evicts what is beyond the bounds as of
// now, the entry's time.
func (s *sessions) record(key, plugin string, cmd []byte, index uint64, now int64, res abi.Result) {
	digest := commandDigest(plugin, cmd)
	v := mp.AppendString(nil, plugin)
	v = mp.AppendBytes(v, digest[:])
	v = mp.AppendUint(v, uint64(res.Code))
	v = mp.AppendBytes(v, res.Data)
	ns := s.st.Namespace(SessionsNamespace)
	s.buf = append(append(s.buf[:0], 'k'), key...)
	ns.Set(s.buf, v, index)
	o := make([]byte, 0, 9)
	o = append(o, 'o')
	o = binary.BigEndian.AppendUint64(o, index)
	ov := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(now))
	ns.Set(o, append(ov, key...), index)
	s.evict(ns, now)
}

// evict drops the oldest records while there are too many, too many bytes,
// or the oldest is older than SessionTTL.
func (s *sessions) evict(ns *state.Namespace, now int64) {
	for {
		var oldKey, recKey []byte
		var at int64
		ns.Scan([]byte("o"), []byte("p"), 1, func(k, v []byte, _ uint64) bool {
			oldKey = append([]byte(nil), k...)
			at = int64(binary.BigEndian.Uint64(v[:8]))
			recKey = append([]byte{'k'}, v[8:]...)
			return false
		})
		if oldKey == nil {
			return
		}
		if ns.Len()/2 <= s.maxKeys && ns.Bytes() <= s.maxBytes && now-at <= int64(s.ttl) {
			return
		}
		ns.Delete(oldKey)
		// The key may have been recorded again later (a new order entry
		// points at it): drop the record only if this entry is its latest.
		if _, ver, ok := ns.Get(recKey); ok && ver == binary.BigEndian.Uint64(oldKey[1:]) {
			ns.Delete(recKey)
		}
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

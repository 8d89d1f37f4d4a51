package logstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Watched is a Store whose writes are watched: it remembers the last
// failed write (a full disk, an I/O error) until a write succeeds again,
// counts failures, and retries a failed stable-store write (a term or a
// vote) until it succeeds or the store is closed, because hashicorp/raft
// panics when one fails (raft.go: "failed to save current term"), and a
// node must not crash because its disk is full. (Raft's main loop waits
// meanwhile: the node takes no part in elections until it can record its
// vote, which is what Raft requires.) Raft handles a failed log write
// itself: a follower refuses the AppendEntries and the leader sends it
// again, a leader steps down.
type Watched struct {
	Store
	failures atomic.Uint64
	mu       sync.Mutex
	err      error // the last write's error, nil once one succeeds
	since    time.Time
	stop     chan struct{}
	stopOnce sync.Once
}

// Watch wraps s.
func Watch(s Store) *Watched { return &Watched{Store: s, stop: make(chan struct{})} }

// ErrWriteFailing wraps the error of a failed write (what the store's
// write methods return) and of the last one (WriteError).
var ErrWriteFailing = errors.New("raftkv: the Raft log cannot be written")

// WriteError returns the error of the last write if it failed (no write has
// succeeded since), and since when writes have been failing; nil if the
// last write succeeded.
func (w *Watched) WriteError() (since time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		return time.Time{}, nil
	}
	return w.since, fmt.Errorf("%w: %w", ErrWriteFailing, w.err)
}

// Failures returns how many writes have failed since the store was opened.
func (w *Watched) Failures() uint64 { return w.failures.Load() }

func (w *Watched) record(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.err = nil
		return nil
	}
	w.failures.Add(1)
	if w.err == nil {
		w.since = time.Now()
	}
	w.err = err
	return fmt.Errorf("%w: %w", ErrWriteFailing, err)
}

func (w *Watched) StoreLog(l *raft.Log) error { return w.record(w.Store.StoreLog(l)) }

func (w *Watched) StoreLogs(ls []*raft.Log) error { return w.record(w.Store.StoreLogs(ls)) }

func (w *Watched) DeleteRange(min, max uint64) error {
	return w.record(w.Store.DeleteRange(min, max))
}

func (w *Watched) Set(k, v []byte) error {
	return w.retry(func() error { return w.Store.Set(k, v) })
}

func (w *Watched) SetUint64(k []byte, v uint64) error {
	return w.retry(func() error { return w.Store.SetUint64(k, v) })
}

// retry runs a stable-store write until it succeeds, waiting 50 ms to 2 s
// between attempts, or until Close.
func (w *Watched) retry(f func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := w.record(f())
		if err == nil {
			return nil
		}
		select {
		case <-w.stop:
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// IsMonotonic implements raft.MonotonicLogStore for a store that does
// (raft-wal): raft then clears the log after installing a snapshot instead
// of keeping a suffix that the next entry would not follow.
func (w *Watched) IsMonotonic() bool {
	m, ok := w.Store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// Close ends the retries and closes the store.
func (w *Watched) Close() error {
	w.stopOnce.Do(func() { close(w.stop) })
	return w.Store.Close()
}

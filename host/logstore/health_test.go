package logstore

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// failing is a real store whose writes fail with ENOSPC while full is set.
type failing struct {
	Store
	full atomic.Bool
}

func (f *failing) StoreLogs(ls []*raft.Log) error {
	if f.full.Load() {
		return syscall.ENOSPC
	}
	return f.Store.StoreLogs(ls)
}

func (f *failing) SetUint64(k []byte, v uint64) error {
	if f.full.Load() {
		return syscall.ENOSPC
	}
	return f.Store.SetUint64(k, v)
}

// TestWatched: a failed write is reported until a write succeeds; a failed
// stable-store write is retried until it succeeds (Raft would panic on its
// error), or until Close.
func TestWatched(t *testing.T) {
	s, _, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f := &failing{Store: s}
	w := Watch(f)
	defer w.Close()
	f.full.Store(true)
	if err := w.StoreLogs([]*raft.Log{{Index: 1, Term: 1}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("StoreLogs on a full disk: %v", err)
	}
	if _, err := w.WriteError(); !errors.Is(err, ErrWriteFailing) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteError = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.SetUint64([]byte("CurrentTerm"), 2) }()
	deadline := time.Now().Add(10 * time.Second)
	for w.Failures() < 3 { // the first attempt and two retries
		if time.Now().After(deadline) {
			t.Fatal("the stable-store write was not retried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("SetUint64 returned %v on a full disk, want it to wait", err)
	default:
	}
	f.full.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("SetUint64 once the disk has room: %v", err)
	}
	if _, err := w.WriteError(); err != nil {
		t.Fatalf("WriteError after a successful write: %v", err)
	}
	if v, _ := w.GetUint64([]byte("CurrentTerm")); v != 2 {
		t.Fatalf("CurrentTerm = %d", v)
	}

	f.full.Store(true)
	go func() { done <- w.SetUint64([]byte("CurrentTerm"), 3) }()
	for w.Failures() < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	w.Close()
	if err := <-done; !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("SetUint64 after Close: %v, want its error", err)
	}
}

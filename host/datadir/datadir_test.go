package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLock: a held lock refuses a second holder at once, naming the pid in
// the lock file; a released one is free again.
func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to an open file: a second open in this process
	// conflicts as another process's would.
	_, err = Acquire(dir)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("in use by pid %d", os.Getpid())) {
		t.Fatalf("second Acquire: %v, want ErrInUse naming pid %d", err, os.Getpid())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l, err = Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Close: %v", err)
	}
	l.Close()
}

// TestCheckNodeID: the first ID is recorded; the same one passes again,
// another one is refused with how to rename a node.
func TestCheckNodeID(t *testing.T) {
	dir := t.TempDir()
	if err := CheckNodeID(dir, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := CheckNodeID(dir, "n1"); err != nil {
		t.Fatalf("same ID again: %v", err)
	}
	err := CheckNodeID(dir, "n2")
	if !errors.Is(err, ErrWrongNode) || !strings.Contains(err.Error(), "raftkv remove n1") {
		t.Fatalf("another ID: %v, want ErrWrongNode saying how to rename", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, NodeIDFile)); string(data) != "n1\n" {
		t.Fatalf("%s holds %q", NodeIDFile, data)
	}
}

// TestFixModes: a data directory left 0755 with 0644 files (an old
// version's, or one created under a lax umask) is made private, the public
// key excepted, and a symbolic link's target is not touched.
func TestFixModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	outside := filepath.Join(t.TempDir(), "outside")
	for _, p := range []string{dir, filepath.Join(dir, "snapshots"), filepath.Join(dir, "snapshots", "1-2-3")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o755)
	}
	files := map[string]os.FileMode{
		"node_key": 0o644, "node_key.pub": 0o644, "raft.db": 0o644, "trust": 0o640,
		"snapshots/1-2-3/state.bin": 0o644, "snapshots/1-2-3/meta.json": 0o604, "ok": 0o600,
	}
	for name, mode := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	os.WriteFile(outside, []byte("x"), 0o644)
	os.Chmod(outside, 0o644)
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	changed, err := FixModes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 8 { // 3 directories, 5 files
		t.Errorf("changed %d paths, want 8: %v", len(changed), changed)
	}
	want := map[string]os.FileMode{
		".": 0o700, "snapshots": 0o700, "snapshots/1-2-3": 0o700,
		"node_key": 0o600, "node_key.pub": 0o644, "raft.db": 0o600, "trust": 0o600,
		"snapshots/1-2-3/state.bin": 0o600, "snapshots/1-2-3/meta.json": 0o600, "ok": 0o600,
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", name, fi.Mode().Perm(), mode)
		}
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o644 {
		t.Errorf("the symbolic link's target was changed: %04o", fi.Mode().Perm())
	}
	if changed, err := FixModes(dir); err != nil || len(changed) != 0 {
		t.Errorf("second run: %v %v", changed, err)
	}
}

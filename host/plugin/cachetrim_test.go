package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host/plugin"
)

// cacheFiles returns the compiled modules under dir and their total size.
func cacheFiles(t *testing.T, dir string) (files []string, size int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasPrefix(filepath.Base(filepath.Dir(path)), "wazero-") && len(d.Name()) == 64 {
			info, _ := d.Info()
			files, size = append(files, path), size+info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, size
}

// refusedModule is startLoopModule with its alloc returning 1024+k: a module
// of its own hash that compiles, then is refused as it starts (its start
// function runs out of fuel).
func refusedModule(t *testing.T, k byte) []byte {
	m := startLoopModule()
	i := bytes.Index(m, []byte{0x41, 0x80, 0x08}) // i32.const 1024
	if i < 0 || k >= 0x80 {
		t.Fatal("no i32.const 1024 in startLoopModule")
	}
	m[i+1] |= k
	return m
}

// The compiled-code cache stays within Config.CacheMaxBytes however many
// modules are deployed and refused, the oldest going first. Found by an
// attack on the deploy endpoint: every refused module left its compiled
// code in the cache for good, so a token holder could fill the disk.
func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	opts := testOpts
	opts.Limits.LoadFuel = 1_000_000
	load := func(r *plugin.Runtime, k byte) {
		t.Helper()
		if _, err := r.Load(ctx, refusedModule(t, k), opts); !errors.Is(err, plugin.ErrInvalidModule) {
			t.Fatalf("module %d: %v, want a refusal", k, err)
		}
	}
	newRuntime := func(dir string, max int64) *plugin.Runtime {
		cfg := plugin.DefaultConfig()
		cfg.MemoryLimitPages, cfg.CacheDir, cfg.CacheMaxBytes = 256, dir, max
		r, err := plugin.NewRuntime(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(ctx) })
		return r
	}

	// What one refused module leaves, unbounded: its compiled code, kept.
	dir := t.TempDir()
	r := newRuntime(dir, 0)
	load(r, 0)
	load(r, 1)
	files, size := cacheFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("unbounded: %d files after two refused modules, want 2 (%v)", len(files), files)
	}
	one := size / 2

	// Bounded at two and a half modules: after each load, at most two stay.
	dir = t.TempDir()
	max := one*2 + one/2
	r = newRuntime(dir, max)
	var newest []string
	for k := range byte(6) {
		load(r, k)
		files, size := cacheFiles(t, dir)
		if size > max || len(files) > 2 {
			t.Fatalf("after module %d: %d files, %d bytes, over the bound of %d", k, len(files), size, max)
		}
		newest = files
	}
	// The two left are the last two compiled: module 5 compiles from the
	// cache (no new file), module 4's file is there too.
	load(r, 5)
	if files, _ := cacheFiles(t, dir); len(files) != 2 || !bytes.Equal([]byte(files[0]+files[1]), []byte(newest[0]+newest[1])) {
		t.Errorf("recompiling the newest module changed the cache: %v, then %v", newest, files)
	}

	// A runtime that starts over a cache past its bound trims it at once.
	for k := byte(10); k < 14; k++ {
		load(newRuntime(dir, 0), k)
	}
	if _, size := cacheFiles(t, dir); size <= max {
		t.Fatalf("the unbounded runtime left %d bytes, want more than %d", size, max)
	}
	newRuntime(dir, max)
	if files, size := cacheFiles(t, dir); size > max || len(files) != 2 {
		t.Errorf("at start: %d files, %d bytes, bound %d", len(files), size, max)
	}

	// Only wazero's compiled modules go: not a file it is still writing,
	// nor anything else in the directory, however old (a data dir given as
	// the cache dir lost its log and key: attack round 5).
	old := time.Now().Add(-time.Hour)
	keep := []string{
		filepath.Join(filepath.Dir(newest[0]), strings.Repeat("a", 64)+".1234.tmp"),
		filepath.Join(dir, "raft.db"),
		filepath.Join(dir, "node_key"),
		filepath.Join(dir, "snapshots", strings.Repeat("b", 64)),
		filepath.Join(filepath.Dir(newest[0]), "notes.txt"),
	}
	for _, f := range keep {
		os.MkdirAll(filepath.Dir(f), 0o700)
		if err := os.WriteFile(f, make([]byte, max), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(f, old, old)
	}
	load(r, 20)
	newRuntime(dir, 1) // a bound below everything: every compiled module goes
	for _, f := range keep {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if files, _ := cacheFiles(t, dir); len(files) != 0 {
		t.Errorf("a bound of 1 byte left %v", files)
	}
}

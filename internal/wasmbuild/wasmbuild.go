// Package wasmbuild builds Go packages into raftkv plugin modules for tests.
package wasmbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	cache = map[string][]byte{}
)

// Build compiles the Go package pkg (a path relative to the test's directory,
// or an import path) for wasip1 as a reactor, with optional -ldflags, and
// returns the module bytes. Builds are cached for the life of the process.
func Build(t testing.TB, pkg string, ldflags ...string) []byte {
	t.Helper()
	return build(t, "c-shared", pkg, ldflags)
}

// BuildCommand compiles pkg as Build does but as a WASI command (the
// default build mode: it exports _start, not _initialize), the mistake a
// plugin author makes without -buildmode=c-shared.
func BuildCommand(t testing.TB, pkg string, ldflags ...string) []byte {
	t.Helper()
	return build(t, "default", pkg, ldflags)
}

func build(t testing.TB, mode, pkg string, ldflags []string) []byte {
	t.Helper()
	key := mode + "\x00" + pkg + "\x00" + strings.Join(ldflags, " ")
	mu.Lock()
	defer mu.Unlock()
	if b, ok := cache[key]; ok {
		return b
	}
	sum := sha256.Sum256([]byte(key))
	out := filepath.Join(t.TempDir(), hex.EncodeToString(sum[:8])+".wasm")
	args := []string{"build", "-trimpath", "-buildmode=" + mode, "-o", out}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	cache[key] = b
	return b
}

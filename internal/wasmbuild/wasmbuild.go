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
	"time"
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

// BuildScript runs `sh build.sh ARGS... OUT` in the test's directory (the
// build of a plugin in a language other than Go: its example's or SDK's own
// script) and returns the module written to OUT, once per process for the
// same arguments. Before the first build it runs check, which says whether
// the toolchain (named by need) is installed: a missing toolchain fails the
// test, it never skips it, since scripts/deps.sh installs it.
func BuildScript(t testing.TB, check func() error, need string, args ...string) []byte {
	t.Helper()
	key := "script\x00" + strings.Join(args, "\x00")
	mu.Lock()
	defer mu.Unlock()
	if b, ok := cache[key]; ok {
		return b
	}
	if err := check(); err != nil {
		t.Fatalf("%v: the test needs %s; install it with `bash scripts/deps.sh` (as root) and run the tests again", err, need)
	}
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	start := time.Now()
	if msg, err := exec.Command("sh", append(append([]string{"build.sh"}, args...), out)...).CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s\n(if %s is missing or cannot target wasm32, run `bash scripts/deps.sh`)", err, msg, need)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s: %d bytes in %v", strings.Join(append([]string{"build.sh"}, args...), " "), len(b), time.Since(start).Round(time.Millisecond))
	cache[key] = b
	return b
}

// Cargo is the check of BuildScript for the Rust build scripts: they use
// Debian's /usr/bin/cargo unless CARGO names another.
func Cargo() error {
	if os.Getenv("CARGO") != "" {
		return nil
	}
	_, err := os.Stat("/usr/bin/cargo")
	return err
}

// Clang is the check of BuildScript for the C build script: clang, or the
// compiler CLANG names.
func Clang() error {
	clang := os.Getenv("CLANG")
	if clang == "" {
		clang = "clang"
	}
	_, err := exec.LookPath(clang)
	return err
}

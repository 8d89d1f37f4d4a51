package plugin_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/raftkv/raftkv/host/plugin"
)

var (
	wasmMu    sync.Mutex
	wasmCache = map[string][]byte{}
	wasmDir   string
)

// buildWasm compiles the Go package at pkg (relative to this directory) for
// wasip1 as a reactor and returns the module bytes. Builds are cached per run.
func buildWasm(t testing.TB, pkg string) []byte {
	t.Helper()
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if b, ok := wasmCache[pkg]; ok {
		return b
	}
	if wasmDir == "" {
		d, err := os.MkdirTemp("", "raftkv-wasm")
		if err != nil {
			t.Fatal(err)
		}
		wasmDir = d
	}
	out := filepath.Join(wasmDir, filepath.Base(pkg)+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wasmCache[pkg] = b
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if wasmDir != "" {
		os.RemoveAll(wasmDir)
	}
	os.Exit(code)
}

// testOpts loads a module as the FSM loads a plugin: with the default
// limits, but 256 pages of memory (newRuntime's cap).
var testOpts = func() plugin.LoadOptions {
	o := plugin.LoadOptions{Name: "test", Limits: plugin.DefaultLimits()}
	o.Limits.MemoryPages = 256
	return o
}()

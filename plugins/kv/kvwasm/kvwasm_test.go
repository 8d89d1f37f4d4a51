package kvwasm

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestModuleIsWasm(t *testing.T) {
	if !bytes.HasPrefix(Module, []byte("\x00asm\x01\x00\x00\x00")) {
		t.Fatalf("Module does not start with the wasm header: % x", Module[:min(8, len(Module))])
	}
	for _, name := range []string{"raftkv_abi_v1", "raftkv_alloc", "raftkv_input_buffer", "raftkv_apply", "raftkv_query", "_initialize"} {
		if !bytes.Contains(Module, []byte(name)) {
			t.Errorf("Module does not mention its export %s", name)
		}
	}
}

// TestModuleUpToDate rebuilds the plugin and checks that the committed
// kv.wasm is what the current sources and toolchain produce.
func TestModuleUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	out := filepath.Join(t.TempDir(), "kv.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-buildvcs=false", "-buildmode=c-shared", "-o", out, "./plugins/kv")
	cmd.Dir = "../../.."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(built) != sha256.Sum256(Module) {
		t.Fatalf("plugins/kv/kvwasm/kv.wasm is stale (%d bytes, rebuilt %d): run go generate ./plugins/kv/kvwasm", len(Module), len(built))
	}
}

// Package proctest holds what the tests that run raftkv nodes behind real
// loopback addresses share: cmd/raftkv's in-process tests, the system tests
// of the built binary (test/system) and the in-process test cluster
// (internal/cluster).
package proctest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WasmCacheDir is the compiled-plugin cache shared by every node the tests
// start, in-process or not, and by successive test runs: compiling the KV
// plugin takes seconds, loading it from the cache milliseconds.
// RAFTKV_TEST_WASM_CACHE names another directory.
func WasmCacheDir(t testing.TB) string {
	if d := os.Getenv("RAFTKV_TEST_WASM_CACHE"); d != "" {
		return d
	}
	d := filepath.Join(os.TempDir(), "raftkv-test-wasm-cache")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// Poll calls f until it returns nil or timeout passes, then fails the test
// with f's last error.
func Poll(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreeAddr returns ip:port with a port free at the time of the call.
func FreeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

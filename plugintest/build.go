package plugintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build compiles the Go plugin package pkg (a path or pattern `go build`
// accepts, relative to dir; "" is the current directory) to a WASI reactor,
// the way the SDK's documentation says (GOOS=wasip1 GOARCH=wasm,
// -buildmode=c-shared, -trimpath, -buildvcs=false), and returns the module.
// It needs the go command on PATH.
func Build(dir, pkg string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "plugintest-build")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "plugin.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("plugintest: building %s: %w\n%s", pkg, err, msg)
	}
	return os.ReadFile(out)
}

package plugin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestLoadRefusesCommandModule: a plugin built without -buildmode=c-shared
// is a WASI command (it exports _start, not _initialize): its runtime would
// never be initialised, and its first call would trap. Load refuses it, and
// says how to build a reactor.
func TestLoadRefusesCommandModule(t *testing.T) {
	r := newRuntime(t, 0)
	_, err := r.Load(context.Background(), wasmbuild.BuildCommand(t, "./testdata/nodescriber"), testOpts)
	if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), "-buildmode=c-shared") {
		t.Fatalf("loading a WASI command: %v, want ErrInvalidModule telling to build with -buildmode=c-shared", err)
	}
}

// TestLoadInitialiserFails: a module whose initialiser loops runs out of
// load fuel: a refusal of the module (ErrInvalidModule, which the API
// answers with 400), not a time limit and not a failure of the host.
func TestLoadInitialiserFails(t *testing.T) {
	r := newRuntime(t, 0)
	_, err := r.Load(context.Background(), wasmbuild.Build(t, "./testdata/hostile", "-X main.initLoop=yes"), testOpts)
	if !errors.Is(err, plugin.ErrInvalidModule) || errors.Is(err, plugin.ErrTimeLimit) {
		t.Fatalf("loading a module whose initialiser loops: %v, want ErrInvalidModule", err)
	}
}

package plugin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestLoadTimeLimitIsNotARefusal: a module whose raftkv_info runs past the
// call time limit (trusted: no fuel stops it first) fails to load with
// ErrTimeLimit, not ErrInvalidModule (a faster node would load it), and
// nothing stays open.
func TestLoadTimeLimitIsNotARefusal(t *testing.T) {
	r := newRuntime(t, 250*time.Millisecond)
	// About a second of deterministic work (some 40 ns an iteration).
	wasm := wasmbuild.Build(t, "../testdata/slow", "-X main.infoSpin=25000000")
	opts := testOpts
	opts.Limits.Trusted = true
	_, err := r.Load(context.Background(), wasm, opts)
	if !errors.Is(err, plugin.ErrTimeLimit) || errors.Is(err, plugin.ErrInvalidModule) {
		t.Fatalf("Load: %v, want ErrTimeLimit and not ErrInvalidModule", err)
	}
	if n := r.OpenModules(); n != 0 {
		t.Fatalf("%d modules open after a failed load", n)
	}
}

// TestModulesOfOneHashCloseIndependently: two loads of the same bytes share
// compiled code but not its lifetime: closing one (twice, even) leaves the
// other usable; a pool whose module is closed answers ErrClosed.
func TestModulesOfOneHashCloseIndependently(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, 0)
	wasm := buildWasm(t, "./testdata/guest")
	a, err := r.Load(ctx, wasm, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Load(ctx, wasm, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.OpenModules(); n != 2 {
		t.Fatalf("%d modules open, want 2", n)
	}
	pa := r.NewPool(a, 1)
	a.Close(ctx)
	a.Close(ctx) // idempotent: must not release b's reference
	if n := r.OpenModules(); n != 1 {
		t.Fatalf("%d modules open after closing one, want 1", n)
	}
	in, err := r.Instantiate(ctx, b)
	if err != nil {
		t.Fatalf("instantiating a module after another of its hash closed: %v", err)
	}
	in.Close(ctx)
	pa.Close(ctx)
	if _, err := pa.Query(ctx, nil, []byte("get k")); !errors.Is(err, plugin.ErrClosed) {
		t.Fatalf("query on a closed pool: %v, want ErrClosed", err)
	}
	b.Close(ctx)
	if n := r.OpenModules(); n != 0 {
		t.Fatalf("%d modules open, want 0", n)
	}
}

package plugin_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
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

// TestDeepNestingRefusedBeforeCompile: a module of one function nesting
// 80,000 empty blocks (240 KB) is refused before it is compiled. Found by
// an attack on the deploy endpoint with a million (3 MB, which
// meter.MaxFunctionBytes now refuses first): the optimising compiler's
// time grows with the square of the nesting, and the leader compiled it
// for minutes after the client had given up, holding the deploy lock
// (meter.MaxNesting). Compiled, these 80,000 would take some 25 s.
func TestDeepNestingRefusedBeforeCompile(t *testing.T) {
	const depth = 80_000
	body := binary.AppendUvarint(nil, 0) // no locals
	body = append(body, bytes.Repeat([]byte{0x02, 0x40}, depth)...)
	body = append(body, bytes.Repeat([]byte{0x0b}, depth+1)...)
	code := binary.AppendUvarint([]byte{1}, uint64(len(body)))
	code = append(code, body...)
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	wasm = append(wasm, 1, 4, 1, 0x60, 0, 0)                                          // a type () -> ()
	wasm = append(wasm, 3, 2, 1, 0)                                                   // one function of it
	wasm = append(binary.AppendUvarint(append(wasm, 10), uint64(len(code))), code...) // its code
	_, err := newRuntime(t, time.Second).Load(context.Background(), wasm, testOpts)
	if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), "nests blocks more than") {
		t.Fatalf("Load: %v, want ErrInvalidModule for its nesting", err)
	}
}

// startLoopModule is a minimal plugin (no imports) whose start section
// (the function the engine runs as it instantiates the module, before any
// export can be called) loops for ever.
func startLoopModule() []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, body ...byte) {
		b = append(b, id, byte(len(body))) // every body is shorter than 128 bytes
		b = append(b, body...)
	}
	section(1, 3, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 2, 0x7f, 0x7f, 0) // () -> (), (i32) -> i32, (i32, i32) -> ()
	section(3, 5, 0, 1, 2, 2, 0)                                              // marker, alloc, apply, query, spin
	section(5, 1, 0, 1)                                                       // one memory of 1 page
	var exports []byte
	for i, e := range []string{"raftkv_abi_v1", "raftkv_alloc", "raftkv_apply", "raftkv_query", "memory"} {
		kind, index := byte(0), byte(i)
		if e == "memory" {
			kind, index = 2, 0
		}
		exports = append(append(append(exports, byte(len(e))), e...), kind, index)
	}
	section(7, append([]byte{5}, exports...)...)
	section(8, 4) // start: spin
	section(10, 5, 2, 0, 0x0b, 5, 0, 0x41, 0x80, 0x08, 0x0b, 2, 0, 0x0b, 2, 0, 0x0b,
		7, 0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b) // alloc returns 1024; spin: loop br 0 end
	return b
}

// TestStartSectionLoop: a module whose start section loops is stopped, as
// every call is: metered, it runs out of its load fuel (a refusal, the
// same on every node); trusted (Limits.Trusted, no fuel), it reaches the
// wall-clock limit (ErrTimeLimit, not a refusal: the node stops), instead
// of instantiating for ever.
func TestStartSectionLoop(t *testing.T) {
	r := newRuntime(t, 200*time.Millisecond)
	metered := testOpts
	metered.Limits.LoadFuel = 10_000_000 // the default's 200M burn for some 8 s
	_, err := r.Load(context.Background(), startLoopModule(), metered)
	// (Out of fuel in a start section reads as the trap the metering code
	// uses, "unreachable": the instance, and its fuel counter, are gone.)
	if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), "start function") {
		t.Fatalf("metered: %v, want a refusal of its start function", err)
	}
	opts := testOpts
	opts.Limits.Trusted = true
	done := make(chan error, 1)
	go func() {
		_, err := r.Load(context.Background(), startLoopModule(), opts)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, plugin.ErrTimeLimit) || errors.Is(err, plugin.ErrInvalidModule) {
			t.Fatalf("trusted: %v, want ErrTimeLimit and not ErrInvalidModule", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("trusted: loading a module whose start section loops did not return in 30 s")
	}
	if n := r.OpenModules(); n != 0 {
		t.Fatalf("%d modules open after the failed loads", n)
	}
}

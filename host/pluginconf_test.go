package host

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

func hostileWasm(t testing.TB) []byte {
	return wasmbuild.Build(t, "./plugin/testdata/hostile")
}

func specEnv(name string, spec deploySpec) envelope {
	return envelope{Kind: kindDeploy, Plugin: name, Payload: spec.encode()}
}

func setLimitsEnv(t *testing.T, name string, spec setLimitsSpec) envelope {
	b, err := abi.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	return envelope{Kind: kindSetLimits, Plugin: name, Payload: b}
}

// TestFSMReplicatedLimits: a deploy entry's limits are what the plugin runs
// with (a write quota turns a command into too_large), a set-limits entry
// changes them (the same command then succeeds) without a migration or a
// new activation index, and a snapshot carries them: a node restored from
// it refuses and accepts as the original does. A snapshot written before
// limits were replicated restores with the defaults.
func TestFSMReplicatedLimits(t *testing.T) {
	wasm := hostileWasm(t)
	f, _, _ := testFSM(t, longCallTimeout)
	l := &testLog{t: t, f: f}
	lim := plugin.DefaultLimits()
	lim.MaxWriteBytes = 4096
	l.mustOK(specEnv("h", deploySpec{Wasm: wasm, Limits: lim, Create: true}))
	since := f.plugin("h").since
	bomb := cmdEnv("h", "statebomb 10 1000")
	if r := l.apply(bomb)[0]; r.err != nil || r.res.Code != abi.CodeTooLarge {
		t.Fatalf("10 KB of writes with a 4 KiB write quota: %v %v, want too_large", r.err, r.res)
	}
	if got := f.plugin("h").mod.Limits; got != lim {
		t.Fatalf("limits %+v, want %+v", got, lim)
	}

	snapLow := snapshotOf(t, f)
	lim.MaxWriteBytes = 1 << 20
	l.mustOK(setLimitsEnv(t, "h", setLimitsSpec{Limits: lim}))
	if p := f.plugin("h"); p.mod.Limits != lim || p.since != since {
		t.Fatalf("after set-limits: limits %+v since %d, want %+v since %d", p.mod.Limits, p.since, lim, since)
	}
	l.mustOK(bomb)
	snapHigh := snapshotOf(t, f)

	for _, tc := range []struct {
		name string
		snap []byte
		code abi.Code
	}{{"low", snapLow, abi.CodeTooLarge}, {"high", snapHigh, abi.CodeOK}} {
		g, _, _ := testFSM(t, longCallTimeout)
		if err := g.Restore(io.NopCloser(bytes.NewReader(tc.snap))); err != nil {
			t.Fatal(err)
		}
		gl := &testLog{t: t, f: g, index: l.index}
		if r := gl.apply(bomb)[0]; r.err != nil || r.res.Code != tc.code {
			t.Errorf("restored from the %s-quota snapshot: %v %v, want code %v", tc.name, r.err, r.res, tc.code)
		}
	}

	// A snapshot of the old format: no limits in the header.
	h, st := splitSnapshot(t, snapLow)
	for i := range h.Plugins {
		h.Plugins[i].Limits = nil
	}
	g, _, _ := testFSM(t, longCallTimeout)
	if err := g.Restore(io.NopCloser(bytes.NewReader(joinSnapshot(t, h, st)))); err != nil {
		t.Fatal(err)
	}
	if got := g.plugin("h").mod.Limits; got != plugin.DefaultLimits() {
		t.Fatalf("restored from a snapshot without limits: %+v, want the defaults", got)
	}
}

// TestFSMDeployPreconditions: the preconditions of a deploy entry are
// checked when it is applied, so that of two concurrent upgrades naming
// the same hash only the first succeeds; an upgrade to a module of another
// raftkv_info name is refused unless forced; a legacy entry (the module
// alone) deploys with the default limits; a malformed entry or invalid
// limits are refused as results, not failures of the node.
func TestFSMDeployPreconditions(t *testing.T) {
	hostile, v1, v2 := hostileWasm(t), slowWasm(t, "1"), slowWasm(t, "2")
	f, _, _ := testFSM(t, longCallTimeout)
	l := &testLog{t: t, f: f}
	def := plugin.DefaultLimits()
	l.mustOK(envelope{Kind: kindDeploy, Plugin: "s", Payload: v1}) // legacy: the module alone
	if got := f.plugin("s").mod.Limits; got != def {
		t.Fatalf("legacy deploy entry: limits %+v, want the defaults", got)
	}
	h1 := plugin.HashOf(v1)
	rs := l.apply(
		specEnv("s", deploySpec{Wasm: v2, Limits: def, Create: true}),           // exists
		specEnv("s", deploySpec{Wasm: v2, Limits: def, IfHash: h1}),             // ok
		specEnv("s", deploySpec{Wasm: v1, Limits: def, IfHash: h1}),             // v1 no longer active
		specEnv("s", deploySpec{Wasm: hostile, Limits: def, IfHash: "*"}),       // another name
		specEnv("t", deploySpec{Wasm: v1, Limits: def, IfHash: "*"}),            // nothing to upgrade
		specEnv("s", deploySpec{Wasm: v2, Limits: plugin.Limits{ApplyFuel: 1}}), // invalid limits
		envelope{Kind: kindDeploy, Plugin: "s", Payload: []byte{0x81, 0xc1}},    // malformed
		setLimitsEnv(t, "nope", setLimitsSpec{Limits: def}),                     // no such plugin
	)
	want := []error{ErrPrecondition, nil, ErrPrecondition, ErrConflict, ErrPrecondition, ErrInvalid, ErrInvalid, ErrNotFound}
	for i, w := range want {
		if w == nil && rs[i].err != nil || w != nil && !errors.Is(rs[i].err, w) {
			t.Errorf("entry %d: %v, want %v", i, rs[i].err, w)
		}
	}
	if f.stopped() != nil {
		t.Fatal(f.stopped())
	}
	if got := f.plugin("s").mod.Hash; got != plugin.HashOf(v2) {
		t.Fatalf("s runs %s, want v2", got[:12])
	}
	l.mustOK(specEnv("s", deploySpec{Wasm: hostile, Limits: def, IfHash: plugin.HashOf(v2), Force: true}))
	if got := f.plugin("s").mod.Info.Name; got != "hostile" {
		t.Fatalf("forced upgrade: s runs %q", got)
	}
	// A module without a raftkv_info name is another name too.
	nameless := wasmbuild.Build(t, "./plugin/testdata/nodescriber")
	if r := l.apply(specEnv("s", deploySpec{Wasm: nameless, Limits: def, IfHash: "*"}))[0]; !errors.Is(r.err, ErrConflict) {
		t.Fatalf("upgrade of a named plugin to a module without a name: %v, want ErrConflict", r.err)
	}
}

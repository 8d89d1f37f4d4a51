package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

func hostileWasm(t testing.TB) []byte {
	return wasmbuild.Build(t, "../../host/plugin/testdata/hostile")
}

func specEnv(name string, spec DeploySpec) Envelope {
	return Envelope{Kind: KindDeploy, Plugin: name, Payload: spec.Encode()}
}

func setLimitsEnv(t *testing.T, name string, spec SetLimitsSpec) Envelope {
	b, err := abi.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	return Envelope{Kind: KindSetLimits, Plugin: name, Payload: b}
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
	l.mustOK(specEnv("h", DeploySpec{Wasm: wasm, Limits: lim, Create: true}))
	since := f.Plugin("h").since
	bomb := cmdEnv("h", "statebomb 10 1000")
	if r := l.apply(bomb)[0]; r.Err != nil || r.Res.Code != abi.CodeTooLarge {
		t.Fatalf("10 KB of writes with a 4 KiB write quota: %v %v, want too_large", r.Err, r.Res)
	}
	if got := f.Plugin("h").mod.Limits; got != lim {
		t.Fatalf("limits %+v, want %+v", got, lim)
	}

	snapLow := snapshotOf(t, f)
	lim.MaxWriteBytes = 1 << 20
	l.mustOK(setLimitsEnv(t, "h", SetLimitsSpec{Limits: lim}))
	if p := f.Plugin("h"); p.mod.Limits != lim || p.since != since {
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
		if r := gl.apply(bomb)[0]; r.Err != nil || r.Res.Code != tc.code {
			t.Errorf("restored from the %s-quota snapshot: %v %v, want code %v", tc.name, r.Err, r.Res, tc.code)
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
	if got := g.Plugin("h").mod.Limits; got != plugin.DefaultLimits() {
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
	l.mustOK(Envelope{Kind: KindDeploy, Plugin: "s", Payload: v1}) // legacy: the module alone
	if got := f.Plugin("s").mod.Limits; got != def {
		t.Fatalf("legacy deploy entry: limits %+v, want the defaults", got)
	}
	h1 := plugin.HashOf(v1)
	rs := l.apply(
		specEnv("s", DeploySpec{Wasm: v2, Limits: def, Create: true}),           // exists
		specEnv("s", DeploySpec{Wasm: v2, Limits: def, IfHash: h1}),             // ok
		specEnv("s", DeploySpec{Wasm: v1, Limits: def, IfHash: h1}),             // v1 no longer active
		specEnv("s", DeploySpec{Wasm: hostile, Limits: def, IfHash: "*"}),       // another name
		specEnv("t", DeploySpec{Wasm: v1, Limits: def, IfHash: "*"}),            // nothing to upgrade
		specEnv("s", DeploySpec{Wasm: v2, Limits: plugin.Limits{ApplyFuel: 1}}), // invalid limits
		Envelope{Kind: KindDeploy, Plugin: "s", Payload: []byte{0x81, 0xc1}},    // malformed
		setLimitsEnv(t, "nope", SetLimitsSpec{Limits: def}),                     // no such plugin
	)
	want := []error{ErrPrecondition, nil, ErrPrecondition, ErrConflict, ErrPrecondition, ErrInvalid, ErrInvalid, ErrNotFound}
	for i, w := range want {
		if w == nil && rs[i].Err != nil || w != nil && !errors.Is(rs[i].Err, w) {
			t.Errorf("entry %d: %v, want %v", i, rs[i].Err, w)
		}
	}
	if f.Stopped() != nil {
		t.Fatal(f.Stopped())
	}
	if got := f.Plugin("s").mod.Hash; got != plugin.HashOf(v2) {
		t.Fatalf("s runs %s, want v2", got[:12])
	}
	l.mustOK(specEnv("s", DeploySpec{Wasm: hostile, Limits: def, IfHash: plugin.HashOf(v2), Force: true}))
	if got := f.Plugin("s").mod.Info.Name; got != "hostile" {
		t.Fatalf("forced upgrade: s runs %q", got)
	}
	// A module without a raftkv_info name is another name too.
	nameless := wasmbuild.Build(t, "../../host/plugin/testdata/nodescriber")
	if r := l.apply(specEnv("s", DeploySpec{Wasm: nameless, Limits: def, IfHash: "*"}))[0]; !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("upgrade of a named plugin to a module without a name: %v, want ErrConflict", r.Err)
	}
}

// TestFSMTrustedIsReplicated: a deploy entry's trusted flag is how every
// node runs the plugin. Metered, the hostile plugin's loop is out_of_fuel;
// deployed again trusted (the same module: no migration), it runs without
// fuel until the wall-clock limit stops the node (the stand-in for an
// unmetered host bug). A node restored from a snapshot, and one that
// replays the log (a restart), run it trusted too; deployed once more
// without the flag, it is metered again.
func TestFSMTrustedIsReplicated(t *testing.T) {
	wasm := hostileWasm(t)
	trusted := trustedLimits()
	log := []Envelope{
		specEnv("h", DeploySpec{Wasm: wasm, Limits: plugin.DefaultLimits(), Create: true}),
		cmdEnv("h", "loop"),
		specEnv("h", DeploySpec{Wasm: wasm, Limits: trusted, IfHash: "*"}),
		cmdEnv("h", "set a 1"),
	}
	f, _, _ := testFSM(t, shortCallTimeout)
	l := &testLog{t: t, f: f}
	rs := l.apply(log...)
	if r := rs[1]; r.Err != nil || r.Res.Code != abi.CodeOutOfFuel {
		t.Fatalf("the loop, metered: %v %v, want out_of_fuel", r.Err, r.Res)
	}
	for _, i := range []int{0, 2, 3} {
		if r := rs[i]; r.Err != nil || !r.Res.OK() {
			t.Fatalf("entry %d: %v %v", i, r.Err, r.Res.Err())
		}
	}
	if got := f.Plugin("h").mod.Limits; got != trusted {
		t.Fatalf("limits %+v after the trusted deploy, want %+v", got, trusted)
	}
	snap := snapshotOf(t, f)
	loopStops := func(what string, g *FSM, gl *testLog) {
		t.Helper()
		if got := g.Plugin("h").mod.Limits; got != trusted {
			t.Fatalf("%s: limits %+v, want %+v", what, got, trusted)
		}
		if r := gl.apply(cmdEnv("h", "loop"))[0]; !errors.Is(r.Err, ErrStopped) {
			t.Fatalf("%s: the trusted loop: %v %v, want ErrStopped (the wall-clock limit)", what, r.Err, r.Res)
		}
		if err := g.Stopped(); err == nil || !strings.Contains(err.Error(), "wall-clock") {
			t.Fatalf("%s: failure %v, want the wall-clock limit", what, err)
		}
	}

	g, _, _ := testFSM(t, shortCallTimeout)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	loopStops("restored from a snapshot", g, &testLog{t: t, f: g, index: l.index})

	r, _, _ := testFSM(t, shortCallTimeout)
	rl := &testLog{t: t, f: r}
	rl.apply(log...)
	loopStops("replaying the log", r, rl)

	l.mustOK(specEnv("h", DeploySpec{Wasm: wasm, Limits: plugin.DefaultLimits(), IfHash: "*"}))
	if r := l.apply(cmdEnv("h", "loop"))[0]; r.Err != nil || r.Res.Code != abi.CodeOutOfFuel {
		t.Fatalf("the loop, deployed again without trust: %v %v, want out_of_fuel", r.Err, r.Res)
	}
	if got := value(f, "h", "a"); got != "1" {
		t.Fatalf("a = %q after the deploys, want 1 (the state is kept)", got)
	}
}

// TestFSMBudgetPastCallTimeout: a metered plugin deployed with a budget
// that takes longer to burn than the node's CallTimeout (300,000,000 fuel
// against 200 ms) does not stop the node: its loop is out_of_fuel, the
// same result on every node, and the next command succeeds. (Its calls get
// the time of their budget, plugin.Runtime.CallLimit.)
func TestFSMBudgetPastCallTimeout(t *testing.T) {
	f, _, _ := testFSM(t, 200*time.Millisecond)
	l := &testLog{t: t, f: f}
	lim := plugin.DefaultLimits()
	lim.ApplyFuel = 300_000_000
	l.mustOK(specEnv("h", DeploySpec{Wasm: hostileWasm(t), Limits: lim, Create: true}))
	rs := l.apply(cmdEnv("h", "loop"), cmdEnv("h", "set a 1"))
	if r := rs[0]; r.Err != nil || r.Res.Code != abi.CodeOutOfFuel {
		t.Fatalf("the loop: %v %v, want out_of_fuel", r.Err, r.Res)
	}
	if r := rs[1]; r.Err != nil || !r.Res.OK() {
		t.Fatalf("the next command: %v %v", r.Err, r.Res.Err())
	}
	if err := f.Stopped(); err != nil {
		t.Fatal(err)
	}
}

package fsm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// spinIters is a "spin" of the slow test plugin (host/testdata/slow) that
// takes about 4 seconds: some 40 ns an iteration, past shortCallTimeout on
// any machine and within longCallTimeout on one 30 times slower.
// shortCallTimeout still lets a Go module's _initialize finish on a loaded
// machine (250 ms did not, at load 20).
//
// watchSpin is a spin a test watches while it runs (a reader during a
// migration, a view during a load): it must outlast the test's look, and
// runs under longCallTimeout. Under the race detector (make test) it is
// spinIters; without (make test-short) about a second, which is all such a
// look needs and spares the short suite some 7 s of CPU (race_test.go).
const (
	spinIters        = "100000000"
	shortCallTimeout = time.Second
	longCallTimeout  = 2 * time.Minute
)

// slowWasm builds the slow test plugin at a version, with more -X flags.
func slowWasm(t testing.TB, version string, flags ...string) []byte {
	return wasmbuild.Build(t, "../../host/testdata/slow", append([]string{"-X main.version=" + version}, flags...)...)
}

// logCh is a slog.Handler that passes each message on (dropping messages
// when nobody reads).
type logCh chan string

func (c logCh) Enabled(context.Context, slog.Level) bool { return true }
func (c logCh) Handle(_ context.Context, r slog.Record) error {
	select {
	case c <- r.Message:
	default:
	}
	return nil
}
func (c logCh) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c logCh) WithGroup(string) slog.Handler      { return c }

// waitLog waits for a message containing sub.
func waitLog(t *testing.T, logs logCh, sub string) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case m := <-logs:
			if strings.Contains(m, sub) {
				return
			}
		case <-timeout:
			t.Fatalf("no log message with %q", sub)
		}
	}
}

// logged reports whether a message containing sub has arrived, without
// waiting for more.
func logged(logs logCh, sub string) bool {
	for {
		select {
		case m := <-logs:
			if strings.Contains(m, sub) {
				return true
			}
		default:
			return false
		}
	}
}

// testFSM returns an FSM on a runtime of its own with the given call time
// limit; plugin log messages go to the returned channel.
func testFSM(t *testing.T, callTimeout time.Duration) (*FSM, *plugin.Runtime, logCh) {
	t.Helper()
	ctx := context.Background()
	logs := make(logCh, 1024)
	cfg := plugin.DefaultConfig()
	cfg.CallTimeout = callTimeout
	cfg.CacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache") // shared with the other tests
	cfg.Logger = slog.New(logs)
	rt, err := plugin.NewRuntime(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	f := New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Runtime: rt, Trust: &trust.Trust{}, QueryInstances: 2})
	t.Cleanup(f.Close) // before rt.Close
	return f, rt, logs
}

// testLog hands entries to an FSM as Raft would, at consecutive indexes.
type testLog struct {
	t     *testing.T
	f     *FSM
	index uint64
}

func (l *testLog) logs(envs ...Envelope) []*raft.Log {
	l.t.Helper()
	out := make([]*raft.Log, len(envs))
	for i, e := range envs {
		l.index++
		e.Time = int64(l.index)
		data, err := e.Encode()
		if err != nil {
			l.t.Fatal(err)
		}
		out[i] = &raft.Log{Index: l.index, Term: 1, Type: raft.LogCommand, Data: data}
	}
	return out
}

func (l *testLog) apply(envs ...Envelope) []*Result {
	return results(l.f.ApplyBatch(l.logs(envs...)))
}

// applyAsync applies a batch in a goroutine; the channel delivers the results.
func (l *testLog) applyAsync(envs ...Envelope) <-chan []*Result {
	logs := l.logs(envs...)
	ch := make(chan []*Result, 1)
	go func() { ch <- results(l.f.ApplyBatch(logs)) }()
	return ch
}

// mustOK applies a batch and fails unless every entry succeeded.
func (l *testLog) mustOK(envs ...Envelope) {
	l.t.Helper()
	for i, r := range l.apply(envs...) {
		if r.Err != nil || !r.Res.OK() {
			l.t.Fatalf("entry %d of the batch: %v %v", i, r.Err, r.Res.Err())
		}
	}
}

func results(out []any) []*Result {
	rs := make([]*Result, len(out))
	for i, r := range out {
		rs[i] = r.(*Result)
	}
	return rs
}

// deployEnv deploys a module trusted (plugin.Limits.Trusted: unmetered),
// so that the slow plugin's spins run until they end or reach the
// wall-clock limit: the stand-in for an unmetered host bug.
func deployEnv(name string, wasm []byte) Envelope {
	spec := DeploySpec{Wasm: wasm, Limits: trustedLimits(), Force: true}
	return Envelope{Kind: KindDeploy, Plugin: name, Payload: spec.Encode()}
}

// trustedLimits are the default limits, trusted.
func trustedLimits() plugin.Limits {
	lim := plugin.DefaultLimits()
	lim.Trusted = true
	return lim
}

func cmdEnv(name, cmd string) Envelope {
	return Envelope{Kind: KindCommand, Plugin: name, Payload: []byte(cmd)}
}

func removeEnv(name string) Envelope {
	payload, _ := abi.Marshal(&RemovePlugin{})
	return Envelope{Kind: KindRemovePlugin, Plugin: name, Payload: payload}
}

func query(t *testing.T, f *FSM, name, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := f.Query(ctx, name, []byte(q))
	if err != nil || !res.OK() {
		t.Fatalf("query %q on %s: %v %v", q, name, err, res.Err())
	}
	return string(res.Data)
}

// answer returns the plugin's answer to the empty query, or the error.
func answer(f *FSM, name string) string {
	res, err := f.Query(context.Background(), name, nil)
	if err != nil {
		return err.Error()
	}
	return string(res.Data)
}

// snapshotOf returns what Persist writes for f's current state.
func snapshotOf(t *testing.T, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.(*fsmSnapshot).writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFSMFailStop: a command that runs past the call time limit stops the
// FSM at that entry: the entries before it (in the same plugin call) are
// applied and answered, it and the rest are not; the applied index is the
// entry before it; and the FSM refuses to snapshot or restore.
func TestFSMFailStop(t *testing.T) {
	f, _, _ := testFSM(t, shortCallTimeout)
	l := &testLog{t: t, f: f}
	l.mustOK(deployEnv("slow", slowWasm(t, "1")))
	rs := l.apply(cmdEnv("slow", "set a 1"), cmdEnv("slow", "set b 1"), cmdEnv("slow", "spin "+spinIters+" k"), cmdEnv("slow", "set c 1"))
	for i, r := range rs {
		if ok := r.Err == nil && r.Res.OK(); ok != (i < 2) {
			t.Errorf("entry %d (index %d): %v %v", i, i+2, r.Err, r.Res.Err())
		}
		if i >= 2 && !errors.Is(r.Err, ErrStopped) {
			t.Errorf("entry %d: %v, want ErrStopped", i, r.Err)
		}
	}
	if got := f.applied.Load(); got != 3 {
		t.Errorf("applied index %d after failing at index 4, want 3", got)
	}
	err := f.Stopped()
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "applying log index 4") || !strings.Contains(err.Error(), "wall-clock") {
		t.Errorf("failure: %v", err)
	}
	for q, want := range map[string]string{"a": "1", "b": "1", "k": "", "c": ""} {
		if got := query(t, f, "slow", q); got != want {
			t.Errorf("%s = %q after the fail-stop, want %q", q, got, want)
		}
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrStopped) {
		t.Errorf("Snapshot of a fail-stopped FSM: %v, want ErrStopped", err)
	}
	if err := f.Restore(io.NopCloser(strings.NewReader("anything"))); !errors.Is(err, ErrStopped) {
		t.Errorf("Restore into a fail-stopped FSM: %v, want ErrStopped", err)
	}
}

// TestFSMDeployTimeLimit: a module whose raftkv_info, or an upgrade whose
// migration, runs past the call time limit stops the FSM at the deploy
// entry; it is not a refusal (a faster node would accept the deploy).
func TestFSMDeployTimeLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first []byte // deployed before, if not nil
		wasm  []byte
		at    string
	}{
		{"info", nil, slowWasm(t, "2", "-X main.infoSpin="+spinIters), "deploying plugin"},
		{"migrate", slowWasm(t, "1"), slowWasm(t, "2", "-X main.migrateSpin="+spinIters), "migrating plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, rt, _ := testFSM(t, shortCallTimeout)
			l := &testLog{t: t, f: f}
			if tc.first != nil {
				l.mustOK(deployEnv("slow", tc.first), cmdEnv("slow", "init"))
			}
			applied := f.applied.Load()
			before := answer(f, "slow")
			rs := l.apply(deployEnv("slow", tc.wasm))
			if !errors.Is(rs[0].Err, ErrStopped) {
				t.Fatalf("deploy: %v, want ErrStopped", rs[0].Err)
			}
			if err := f.Stopped(); err == nil || !strings.Contains(err.Error(), tc.at) || !strings.Contains(err.Error(), "wall-clock") {
				t.Fatalf("failure: %v", err)
			}
			if got := f.applied.Load(); got != applied {
				t.Fatalf("applied index %d, want %d (the deploy entry is not applied)", got, applied)
			}
			if got := answer(f, "slow"); got != before {
				t.Fatalf("after the failed deploy the plugin answers %q, want %q", got, before)
			}
			if got, want := rt.OpenModules(), len(*f.plugins.Load()); got != want {
				t.Fatalf("%d modules open for %d plugins", got, want)
			}
		})
	}
}

// TestFSMClosesModules: a module's compiled code is released when its plugin
// is replaced or removed, when a deploy is refused or a no-op, and when a
// restore replaces it; a module shared by two plugins (the same hash) stays
// usable while either runs it.
func TestFSMClosesModules(t *testing.T) {
	f, rt, _ := testFSM(t, longCallTimeout)
	l := &testLog{t: t, f: f}
	v1, v2 := slowWasm(t, "1"), slowWasm(t, "2")
	open := func(what string) {
		t.Helper()
		if got, want := rt.OpenModules(), len(*f.plugins.Load()); got != want {
			t.Fatalf("after %s: %d modules open for %d active plugins", what, got, want)
		}
	}
	l.mustOK(deployEnv("a", v1))
	open("deploying a")
	l.mustOK(deployEnv("a", v1))
	open("deploying a again (a no-op)")
	l.mustOK(deployEnv("b", v1))
	open("deploying a's module as b")
	l.mustOK(deployEnv("a", v2))
	open("upgrading a")
	// b runs the code a ran before: a new instance of it still starts.
	if got := query(t, f, "b", ""); got != "v1 schema=" {
		t.Fatalf("b answers %q", got)
	}
	if r := l.apply(deployEnv("a", slowWasm(t, "3", "-X main.refuse=yes")))[0]; !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("upgrade whose migration refuses: %v", r.Err)
	}
	open("a refused upgrade")
	if r := l.apply(deployEnv("c", []byte("\x00asm\x01\x00\x00\x00 not a module")))[0]; !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("invalid module: %v", r.Err)
	}
	open("an invalid module")
	l.mustOK(deployEnv("d", v1), deployEnv("d", v2), cmdEnv("d", "init"))
	open("deploying and upgrading d in one batch")
	l.mustOK(removeEnv("b"))
	open("removing b")
	snap := snapshotOf(t, f)
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	open("a restore")
	if got := query(t, f, "d", ""); got != "v2 schema=2" {
		t.Fatalf("d answers %q after the restore", got)
	}
	f.Close()
	if got := rt.OpenModules(); got != 0 {
		t.Fatalf("%d modules open after the FSM closed", got)
	}
}

// TestFSMQueryPairsPluginAndState: a query runs the code active on the state
// it reads, never old code on migrated state nor new code on the state before
// its migration, even while the upgrade's batch is applied.
func TestFSMQueryPairsPluginAndState(t *testing.T) {
	f, _, logs := testFSM(t, longCallTimeout)
	l := &testLog{t: t, f: f}
	l.mustOK(deployEnv("slow", slowWasm(t, "1")), cmdEnv("slow", "init"))
	consistent := func(when string, want ...string) {
		t.Helper()
		got := query(t, f, "slow", "")
		var v, schema int
		if _, err := fmt.Sscanf(got, "v%d schema=%d", &v, &schema); err != nil || v != schema {
			t.Fatalf("%s: the query answered %q: code and state of different versions", when, got)
		}
		if !slices.Contains(want, got) {
			t.Fatalf("%s: the query answered %q, want one of %q", when, got, want)
		}
	}
	// The upgrade's batch begins with no view of the state cached (the last
	// batch changed it, no reader came since); a reader arrives during the
	// migration.
	done := l.applyAsync(deployEnv("slow", slowWasm(t, "2", "-X main.migrateSpin="+watchSpin)))
	waitLog(t, logs, "spinning in raftkv_migrate")
	consistent("during a migration", "v1 schema=1", "v2 schema=2")
	if r := <-done; r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	// A reader came after the last batch, so a view is cached; the batch
	// upgrades, then runs a long command on the new code.
	consistent("between batches", "v2 schema=2")
	done = l.applyAsync(deployEnv("slow", slowWasm(t, "3")), cmdEnv("slow", "spin "+watchSpin+" k"))
	waitLog(t, logs, "spinning in raftkv_apply")
	consistent("after an upgrade, in its batch", "v2 schema=2", "v3 schema=3")
	for _, r := range <-done {
		if r.Err != nil || !r.Res.OK() {
			t.Fatal(r.Err, r.Res.Err())
		}
	}
	consistent("after the upgrade", "v3 schema=3")
}

// TestFSMDeployLoadsBeforeStoreLock: a deploy's module is compiled and
// started before its batch takes the store lock, so readers of the state
// (View, the plugin list behind Stats and /readyz) do not wait for it.
func TestFSMDeployLoadsBeforeStoreLock(t *testing.T) {
	f, _, logs := testFSM(t, longCallTimeout)
	l := &testLog{t: t, f: f}
	l.mustOK(deployEnv("slow", slowWasm(t, "1")), cmdEnv("slow", "init")) // no view cached after it
	done := l.applyAsync(deployEnv("other", slowWasm(t, "2", "-X main.infoSpin="+watchSpin)), cmdEnv("slow", "spin "+watchSpin+" k"))
	waitLog(t, logs, "spinning in raftkv_info")
	v := f.store.View()
	infos := f.PluginInfos()
	if logged(logs, "spinning in raftkv_apply") {
		t.Fatal("View waited for the deploy's module to load: the batch's next command had started")
	}
	if ns, ok := v.Namespace("slow"); !ok || ns.Len() != 1 || len(infos) != 1 {
		t.Fatalf("the view during the load is not the state before the batch: %v %+v", ok, infos)
	}
	for _, r := range <-done {
		if r.Err != nil || !r.Res.OK() {
			t.Fatal(r.Err, r.Res.Err())
		}
	}
	if len(f.PluginInfos()) != 2 || query(t, f, "slow", "k") == "" {
		t.Fatal("the batch was not applied")
	}
}

// fsmState is what a failed restore must leave as it was.
type fsmState struct {
	digest  [32]byte
	applied uint64
	plugins string
	trust   int
	open    int
}

func stateOf(f *FSM, rt *plugin.Runtime) fsmState {
	var names []string
	for name, p := range *f.plugins.Load() {
		names = append(names, name+"="+p.mod.Hash[:12])
	}
	slices.Sort(names)
	return fsmState{
		digest: f.store.View().Digest(), applied: f.applied.Load(), plugins: strings.Join(names, ","),
		trust: len(f.trust.Entries()), open: rt.OpenModules(),
	}
}

// splitSnapshot returns a snapshot's header and the state stream after it.
func splitSnapshot(t *testing.T, snap []byte) (SnapshotHeader, []byte) {
	t.Helper()
	r := bytes.NewReader(snap)
	h, err := ReadSnapshotHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	return h, snap[len(snap)-r.Len():]
}

// joinSnapshot writes a snapshot of header h and state stream st, with a
// valid header checksum.
func joinSnapshot(t *testing.T, h SnapshotHeader, st []byte) []byte {
	t.Helper()
	hdr, err := abi.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(hdr)
	b := append([]byte(snapshotMagic), binary.BigEndian.AppendUint32(nil, uint32(len(hdr)))...)
	b = append(append(b, hdr...), sum[:]...)
	return append(b, st...)
}

func trustLine(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(key))
}

// TestFSMRestoreFailureChangesNothing: a restore that fails (a bad header, a
// corrupt state stream, a trust list that cannot be installed) leaves the
// state, the applied index, the plugins and the trust list as they were and
// closes every module it loaded; a good snapshot then restores.
func TestFSMRestoreFailureChangesNothing(t *testing.T) {
	src, _, _ := testFSM(t, longCallTimeout)
	sl := &testLog{t: t, f: src}
	sl.mustOK(deployEnv("a", slowWasm(t, "1")), cmdEnv("a", "init"), deployEnv("b", slowWasm(t, "2")), cmdEnv("b", "set x 1"))
	if err := src.trust.Add("n1", mustKey(t, trustLine(t))); err != nil {
		t.Fatal(err)
	}
	good := snapshotOf(t, src)
	h, st := splitSnapshot(t, good)

	dst, rt, _ := testFSM(t, longCallTimeout)
	dl := &testLog{t: t, f: dst}
	dl.mustOK(deployEnv("c", slowWasm(t, "3")), cmdEnv("c", "set y 2"), cmdEnv("c", "set z 3"))
	before := stateOf(dst, rt)

	line := trustLine(t)
	dup := h
	dup.Trust = []TrustChange{{NodeID: "n1", Key: line}, {NodeID: "n2", Key: line}} // one key, two nodes
	badName, repeated := h, h
	badName.Plugins = slices.Clone(h.Plugins)
	badName.Plugins[0].Name = "Bad Name"
	repeated.Plugins = append(slices.Clone(h.Plugins), h.Plugins[0])
	corrupt := slices.Clone(st)
	corrupt[len(corrupt)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		snap []byte
	}{
		{"a trust list binding a key to two nodes", joinSnapshot(t, dup, st)},
		{"a bad plugin name", joinSnapshot(t, badName, st)},
		{"a plugin twice", joinSnapshot(t, repeated, st)},
		{"a corrupt state stream", joinSnapshot(t, h, corrupt)},
		{"a truncated state stream", joinSnapshot(t, h, st[:len(st)/2])},
	} {
		err := dst.Restore(io.NopCloser(bytes.NewReader(tc.snap)))
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("restore of %s: %v, want ErrCorruptSnapshot", tc.name, err)
		}
		if after := stateOf(dst, rt); after != before {
			t.Errorf("restore of %s failed but changed the FSM:\n before %+v\n after  %+v", tc.name, before, after)
		}
		if dst.Stopped() != nil {
			t.Fatalf("restore of %s: %v", tc.name, dst.Stopped())
		}
	}
	if err := dst.Restore(io.NopCloser(bytes.NewReader(good))); err != nil {
		t.Fatal(err)
	}
	want := stateOf(src, rt)
	want.open = 2 // rt counts dst's modules only
	if got := stateOf(dst, rt); got != want {
		t.Fatalf("restored FSM:\n got  %+v\n want %+v", got, want)
	}
	if got := query(t, dst, "b", "x"); got != "1" {
		t.Fatalf("restored b: x = %q", got)
	}
}

func mustKey(t *testing.T, line string) ssh.PublicKey {
	t.Helper()
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestFSMRestoreTimeLimit: a snapshot whose module's raftkv_info runs past
// the time limit fail-stops the FSM (a faster node restores it) and changes
// nothing.
func TestFSMRestoreTimeLimit(t *testing.T) {
	src, _, _ := testFSM(t, longCallTimeout)
	(&testLog{t: t, f: src}).mustOK(deployEnv("slow", slowWasm(t, "2", "-X main.infoSpin="+spinIters)))
	snap := snapshotOf(t, src)
	dst, rt, _ := testFSM(t, shortCallTimeout)
	(&testLog{t: t, f: dst}).mustOK(deployEnv("fast", slowWasm(t, "1")), cmdEnv("fast", "init"))
	before := stateOf(dst, rt)
	err := dst.Restore(io.NopCloser(bytes.NewReader(snap)))
	if !errors.Is(err, plugin.ErrTimeLimit) {
		t.Fatalf("restore: %v, want a time limit", err)
	}
	if err := dst.Stopped(); err == nil || !strings.Contains(err.Error(), "restoring the snapshot") {
		t.Fatalf("the FSM did not fail-stop: %v", err)
	}
	if after := stateOf(dst, rt); after != before {
		t.Fatalf("failed restore changed the FSM:\n before %+v\n after  %+v", before, after)
	}
}

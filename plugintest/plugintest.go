// Package plugintest runs a built plugin module (.wasm) in-process, on the
// host's real runtime (fuel metering, memory cap, write quotas, per-entry
// atomicity, trap recovery) against an in-memory state, without a cluster.
// It is for a plugin's own tests (go test), and is what `raftkv plugin run`
// uses.
//
//	p, err := plugintest.LoadFile("queue.wasm", plugintest.Options{})
//	…
//	defer p.Close()
//	r := p.Command(map[string]any{"op": "push", "payload": "x"}) // entry 1
//	job, err := plugintest.Decode[Job](r)
//
// Entries are numbered for the caller (1, 2, 3, … after Options.Index) and
// stamped with a clock that advances Options.Tick per entry from
// Options.Start, so runs are reproducible. Upgrade deploys a new version of
// the module at the next index and runs its migration, as a cluster does.
//
// The API speaks only the ABI's types (package abi) and the SDK's codec
// (MsgPack): the host's internals stay behind it. A Plugin is not safe for
// concurrent use.
package plugintest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// Options configure a Plugin. The zero value is usable.
type Options struct {
	// Name is the plugin's name (its log tag and state namespace); default:
	// the name the module reports, else "plugin".
	Name string
	// MemoryPages caps the instance's memory (64 KiB pages); default 512
	// (32 MiB), the host's default.
	MemoryPages uint32
	// Index is the log index before the first entry (entries are Index+1,
	// Index+2, …); default 0.
	Index uint64
	// Start is the time of entry Index+1; default 2026-01-01T00:00:00Z.
	// Tick is added per entry; default 1 s.
	Start time.Time
	Tick  time.Duration
	// State is the initial state: records with their versions (a backup's
	// namespace, say). Default: empty.
	State []abi.Record
	// Logger receives the plugin's log calls (sdk.Log) and its stdout and
	// stderr. Nil discards them.
	Logger *slog.Logger
	// CacheDir, if set, keeps compiled code between runs (the first compile
	// of a Go module takes seconds).
	CacheDir string
}

// Plugin is a loaded module with its state.
type Plugin struct {
	opts  Options
	rt    *plugin.Runtime
	mod   *plugin.Module
	inst  *plugin.Instance
	store *state.Store
	ns    *state.Namespace
	index uint64
}

// ErrStopped wraps an error after which the module cannot go on: a call ran
// past the runtime's wall-clock limit, or a new instance failed to start. A
// node would fail-stop.
var ErrStopped = errors.New("plugintest: the module stopped")

// LoadFile loads the module at path; see Load.
func LoadFile(path string, opts Options) (*Plugin, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Load(wasm, opts)
}

// Load compiles and validates wasm as a deploy does (a module the host
// would refuse is refused here with the same reason), and starts it.
func Load(wasm []byte, opts Options) (*Plugin, error) {
	if opts.MemoryPages == 0 {
		opts.MemoryPages = plugin.DefaultLimits().MemoryPages
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if opts.Tick == 0 {
		opts.Tick = time.Second
	}
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = opts.MemoryPages
	cfg.CacheDir = opts.CacheDir
	cfg.Logger = opts.Logger
	ctx := context.Background()
	rt, err := plugin.NewRuntime(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Plugin{opts: opts, rt: rt, store: state.New(), index: opts.Index}
	if err := p.load(ctx, wasm); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = p.mod.Info.Name
	}
	if name == "" || state.ValidName(name) != nil {
		name = "plugin"
	}
	p.store.Update(func() { p.ns = p.store.Namespace(name) })
	for _, r := range opts.State {
		if err := checkRecord(r); err != nil {
			p.Close()
			return nil, err
		}
		p.store.Update(func() { p.ns.Set(r.Key, r.Value, r.Version) })
	}
	return p, nil
}

func checkRecord(r abi.Record) error {
	if len(r.Key) == 0 || len(r.Key) > abi.MaxKeySize || len(r.Value) > abi.MaxValueSize {
		return fmt.Errorf("plugintest: initial state: record %q: key of %d bytes or value of %d out of the ABI's limits", r.Key, len(r.Key), len(r.Value))
	}
	return nil
}

// load compiles wasm and starts an instance of it as p's module.
func (p *Plugin) load(ctx context.Context, wasm []byte) error {
	lim := plugin.DefaultLimits()
	lim.MemoryPages = p.opts.MemoryPages
	name := p.opts.Name
	if name == "" {
		name = "plugin"
	}
	mod, err := p.rt.Load(ctx, wasm, plugin.LoadOptions{Name: name, Limits: lim})
	if err != nil {
		return err
	}
	inst, err := p.rt.Instantiate(ctx, mod)
	if err != nil {
		mod.Close(ctx)
		return err
	}
	p.mod, p.inst = mod, inst
	return nil
}

// Close releases the runtime. It is idempotent.
func (p *Plugin) Close() error {
	if p.rt == nil {
		return nil
	}
	err := p.rt.Close(context.Background())
	p.rt = nil
	return err
}

// Info returns what the module reports about itself (raftkv_info).
func (p *Plugin) Info() abi.Info { return p.mod.Info }

// Hash returns the module's sha256 (hex), as the cluster identifies it.
func (p *Plugin) Hash() string { return p.mod.Hash }

// HasMigrate reports whether the module has a migration (raftkv_migrate).
func (p *Plugin) HasMigrate() bool { return p.mod.HasMigrate }

// Index returns the index of the last entry applied.
func (p *Plugin) Index() uint64 { return p.index }

// next returns the next entry for data.
func (p *Plugin) next(data []byte) abi.Entry {
	p.index++
	t := p.opts.Start.Add(time.Duration(p.index-p.opts.Index-1) * p.opts.Tick)
	return abi.Entry{Index: p.index, Term: 1, Time: t.UnixNano(), Data: data}
}

// Apply applies each command as the next entry, in one batch (one guest
// call, as a node applies a committed batch), and returns their results. A
// command whose result is an error left no writes. The error is non-nil only
// when the module stopped (ErrStopped).
func (p *Plugin) Apply(cmds ...[]byte) ([]abi.Result, error) {
	entries := make([]abi.Entry, len(cmds))
	for i, c := range cmds {
		entries[i] = p.next(c)
	}
	var res []abi.Result
	var err error
	p.store.Update(func() { res, err = p.inst.Apply(context.Background(), p.ns, entries) })
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrStopped, err)
	}
	return res, nil
}

// Command encodes v as MsgPack (sdk.Marshal; a []byte is sent as is) and
// applies it as the next entry. A stopped module is reported as a result
// with abi.CodeInternal.
func (p *Plugin) Command(v any) abi.Result {
	data, err := encode(v)
	if err != nil {
		return abi.Result{Code: abi.CodeInternal, Data: []byte(err.Error())}
	}
	res, err := p.Apply(data)
	if err != nil {
		return abi.Result{Code: abi.CodeInternal, Data: []byte(err.Error())}
	}
	return res[0]
}

// Query encodes v as Command does and runs it as a query against the state.
func (p *Plugin) Query(v any) abi.Result {
	data, err := encode(v)
	if err != nil {
		return abi.Result{Code: abi.CodeInternal, Data: []byte(err.Error())}
	}
	var res abi.Result
	p.store.Update(func() { res, err = p.inst.Query(context.Background(), p.ns, data) })
	if err != nil {
		return abi.Result{Code: abi.CodeInternal, Data: []byte(fmt.Errorf("%w: %w", ErrStopped, err).Error())}
	}
	return res
}

func encode(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return sdk.Marshal(v)
}

// Validate runs the module's raftkv_validate on a command (encoded as
// Command encodes it), as the leader does before proposing it: an OK result,
// or the refusal a client would get instead of the command reaching the log.
// A module without the export (HasValidate false) accepts everything.
func (p *Plugin) Validate(v any) abi.Result {
	data, err := encode(v)
	if err != nil {
		return abi.Result{Code: abi.CodeInternal, Data: []byte(err.Error())}
	}
	res, err := p.inst.Validate(context.Background(), data)
	if err != nil {
		return abi.Result{Code: abi.CodeInternal, Data: []byte(fmt.Errorf("%w: %w", ErrStopped, err).Error())}
	}
	return res
}

// HasValidate reports whether the module checks commands before they are
// proposed (raftkv_validate).
func (p *Plugin) HasValidate() bool { return p.mod.HasValidate }

// Upgrade deploys wasm as the plugin's next version at the next index, as
// `raftkv plugin deploy` does on a cluster: it runs the new module's
// migration (with the old module's hash and version); if the migration
// succeeds the new module replaces the old, else its writes are undone, the
// old module stays, and the migration's result says why. The error is for a
// module the host would refuse, or a stopped one.
func (p *Plugin) Upgrade(wasm []byte) (abi.Result, error) {
	ctx := context.Background()
	old, oldInst := p.mod, p.inst
	if err := p.load(ctx, wasm); err != nil {
		return abi.Result{}, err
	}
	meta := p.next(nil)
	mig := abi.Migration{FromHash: old.Hash, FromVersion: old.Info.Version, Index: meta.Index}
	var res abi.Result
	var err error
	p.store.Update(func() { res, err = p.inst.Migrate(ctx, p.ns, mig, meta) })
	if err != nil || !res.OK() {
		p.inst.Close(ctx)
		p.mod.Close(ctx)
		p.mod, p.inst = old, oldInst
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrStopped, err)
		}
		return res, nil
	}
	oldInst.Close(ctx)
	old.Close(ctx)
	return res, nil
}

// State returns every record of the plugin's state in key order (copies).
func (p *Plugin) State() []abi.Record {
	var out []abi.Record
	p.store.Update(func() {
		p.ns.Scan(nil, nil, p.ns.Len()+1, func(k, v []byte, ver uint64) bool {
			out = append(out, abi.Record{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...), Version: ver})
			return true
		})
	})
	return out
}

// Decode decodes a successful result's MsgPack payload into a T; an error
// result is returned as its *abi.Error.
func Decode[T any](r abi.Result) (T, error) {
	var v T
	if err := r.Err(); err != nil {
		return v, err
	}
	if err := sdk.Unmarshal(r.Data, &v); err != nil {
		return v, fmt.Errorf("plugintest: result %x is not a MsgPack %T: %w", r.Data, v, err)
	}
	return v, nil
}

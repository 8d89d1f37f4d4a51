package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// applyResult is what the FSM returns for each log entry (the raft future's
// Response).
type applyResult struct {
	res abi.Result
	err error // host-level failure: unknown plugin, invalid deploy, ...
}

// active is a plugin in use: its module and the engine that runs its code,
// the FSM-owned applier and the query pool (see fsm.engine). It owns its
// module: close releases the engine and the compiled code.
type active struct {
	name  string
	mod   *plugin.Module
	inst  applier
	pool  querier
	since uint64 // log index of the deploy entry
}

// applier runs a plugin's apply and migrate calls, on the FSM goroutine:
// a *plugin.Instance, or a *plugin.Native for a module in
// Config.NativePlugins.
type applier interface {
	Apply(ctx context.Context, st plugin.Store, entries []abi.Entry) ([]abi.Result, error)
	Migrate(ctx context.Context, st plugin.Store, mig abi.Migration, meta abi.Entry) (abi.Result, error)
	Close(ctx context.Context) error
}

// querier runs a plugin's read-only queries, concurrently: a *plugin.Pool,
// or a *plugin.NativePool. After Close a query fails with plugin.ErrClosed.
type querier interface {
	Query(ctx context.Context, st plugin.ReadStore, q []byte) (abi.Result, error)
	Close(ctx context.Context)
}

var (
	_ applier = (*plugin.Instance)(nil)
	_ applier = (*plugin.Native)(nil)
	_ querier = (*plugin.Pool)(nil)
	_ querier = (*plugin.NativePool)(nil)
)

// close releases the plugin's engine and its module. Queries running on it
// finish; later ones fail with plugin.ErrClosed.
func (p *active) close(ctx context.Context) {
	p.inst.Close(ctx)
	p.pool.Close(ctx)
	p.mod.Close(ctx)
}

// PluginInfo describes an active plugin.
type PluginInfo struct {
	Name        string `json:"name"`
	ABIVersion  int    `json:"abi_version"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	Hash        string `json:"hash"`
	Size        int    `json:"size"`
	ActiveSince uint64 `json:"active_since"`
	HasMigrate  bool   `json:"has_migrate"`
	Keys        int    `json:"keys"`
}

// fsm is raftkv's raft.BatchingFSM: host-level entries are handled here,
// plugin commands are handed to the plugin in runs of consecutive entries, one
// plugin call per run.
type fsm struct {
	log     *slog.Logger
	rt      *plugin.Runtime
	store   *state.Store
	trust   *transport.Trust
	queryN  int
	natives map[string]sdk.Plugin    // Config.NativePlugins; read-only
	onPeers func(raft.Configuration) // committed configuration changes
	onTrust func()                   // the trust list changed
	metrics *metrics

	// plugins holds the active plugins by name in a map that is replaced,
	// never modified: the FSM goroutine publishes a new one when a plugin
	// changes, readers load it without a lock.
	plugins atomic.Pointer[map[string]*active]
	// pgen orders plugin changes with the state they go with, for readers
	// (see pluginView): it is odd while a batch (or a restore) that changes
	// plugins is applied, and even again once that batch's state is visible.
	pgen     atomic.Uint64
	lastTime int64 // FSM goroutine only: monotonic "now" given to plugins

	// applied is the index of the last entry applied: after a fail-stop, the
	// one before the entry that failed, whatever Raft handed over with it.
	applied   atomic.Uint64
	appliedMu sync.Mutex
	appliedCh chan struct{} // closed and replaced after each batch

	failed   atomic.Pointer[string] // fail-stop reason
	failOnce sync.Once
	failedCh chan struct{} // closed at the fail-stop
	stop     chan struct{} // closed at shutdown: releases a fail-stopped apply
	entries  []abi.Entry
	envelops []envelope
	loaded   []loadedModule // per entry of the batch being applied
}

// loadedModule is a deploy entry's module, loaded and given its engine before
// the batch takes the store lock: compiling takes seconds, and readers of the
// state must not wait for it. Loading depends on the module's bytes only, so
// doing it early changes no result.
type loadedModule struct {
	p   *active // nil if nothing was loaded
	err error   // the load failed
}

func newFSM(log *slog.Logger, rt *plugin.Runtime, trust *transport.Trust, queryN int, onPeers func(raft.Configuration)) *fsm {
	f := &fsm{
		log: log, rt: rt, store: state.New(), trust: trust, queryN: queryN, onPeers: onPeers,
		appliedCh: make(chan struct{}), failedCh: make(chan struct{}), stop: make(chan struct{}),
	}
	f.plugins.Store(&map[string]*active{})
	return f
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in order. Runs on raft's FSM goroutine.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if f.failed.Load() != nil {
		<-f.stop // fail-stop: never apply past the failure
		err := f.stopped()
		for i := range out {
			out[i] = &applyResult{err: err}
		}
		return out
	}
	start := time.Now()
	f.envelops = f.envelops[:0]
	changes := false // the batch deploys or removes a plugin
	for _, l := range logs {
		var e envelope
		if l.Type == raft.LogCommand {
			var err error
			if e, err = decodeEnvelope(l.Data); err != nil {
				e = envelope{} // kind 0: reported below
			}
			changes = changes || e.Kind == kindDeploy || e.Kind == kindRemovePlugin
		}
		f.envelops = append(f.envelops, e)
	}
	if changes {
		f.loadDeploys(logs)
		f.pgen.Add(1) // odd: readers wait for this batch
	}
	f.store.Update(func() { f.applyLocked(logs, out) })
	if changes {
		f.pgen.Add(1)
		f.closeLoaded() // modules of entries a fail-stop left unapplied
	}
	f.notifyApplied()
	if f.metrics != nil {
		f.metrics.applyBatch.Observe(time.Since(start).Seconds())
		f.metrics.batchSize.Observe(float64(len(logs)))
	}
	return out
}

// applyLocked applies the batch under the store lock.
func (f *fsm) applyLocked(logs []*raft.Log, out []any) {
	for i := 0; i < len(logs); {
		l, e := logs[i], &f.envelops[i]
		if l.Type == raft.LogConfiguration {
			if f.onPeers != nil {
				f.onPeers(raft.DecodeConfiguration(l.Data))
			}
			i++
			continue
		}
		if l.Type != raft.LogCommand {
			i++
			continue
		}
		if e.Kind != kindCommand {
			f.lastTime = max(f.lastTime, e.Time)
		}
		switch e.Kind {
		case kindCommand:
			j := i + 1
			for j < len(logs) && logs[j].Type == raft.LogCommand && f.envelops[j].Kind == kindCommand && f.envelops[j].Plugin == e.Plugin {
				j++
			}
			if n, err := f.applyCommands(logs[i:j], f.envelops[i:j], out[i:j]); err != nil {
				f.stopAt(logs, i+n, err, out)
				return
			}
			i = j
		case kindDeploy:
			r, err := f.deploy(l, e, &f.loaded[i])
			if err != nil {
				f.stopAt(logs, i, err, out)
				return
			}
			out[i] = r
			i++
		case kindRemovePlugin:
			out[i] = f.removePlugin(e)
			i++
		case kindTrustAdd, kindTrustRemove:
			out[i] = f.trustChange(e)
			i++
		default:
			out[i] = &applyResult{err: fmt.Errorf("%w: undecodable log entry %d", ErrInvalid, l.Index)}
			i++
		}
	}
	f.applied.Store(logs[len(logs)-1].Index) // under the store lock: see view
}

// stopAt fail-stops at logs[k]: the entries before it are applied, it and
// the rest are not, and never will be on this run of the node.
func (f *fsm) stopAt(logs []*raft.Log, k int, err error, out []any) {
	// Entries between logs[k-1] and logs[k] are of kinds Raft does not hand
	// over (no-ops, barriers): the state reflects them.
	f.applied.Store(logs[k].Index - 1)
	f.failStop(fmt.Sprintf("applying log index %d", logs[k].Index), err)
	stopped := f.stopped()
	for ; k < len(logs); k++ {
		if out[k] == nil {
			out[k] = &applyResult{err: stopped}
		}
	}
}

// view returns a view of the state and the index it reflects.
func (f *fsm) view() (*state.View, uint64) {
	var before, after uint64
	for {
		f.store.Update(func() { before = f.applied.Load() })
		v := f.store.View()
		f.store.Update(func() { after = f.applied.Load() })
		if before == after { // no batch in between: v is the state at that index
			return v, after
		}
	}
}

// pluginView returns the plugin called name (nil if none is active) and a
// view of the state, as of the same point in the log: the plugin is the one
// whose code was active on that state. During an upgrade, old code never
// reads migrated state, nor new code the state before its migration. While a
// batch that changes plugins is applied, it waits for the batch to end.
func (f *fsm) pluginView(ctx context.Context, name string) (*active, *state.View, error) {
	for {
		g := f.pgen.Load()
		if g&1 == 1 {
			_, ch := f.appliedSignal()
			if f.pgen.Load() == g { // ch is closed after this batch
				select {
				case <-ch:
				case <-ctx.Done():
					return nil, nil, fmt.Errorf("%w: waiting for a plugin change to be applied: %v", ErrTimeout, ctx.Err())
				}
			}
			continue
		}
		p := (*f.plugins.Load())[name]
		v := f.store.View()
		// pgen did not move: no plugin change began or ended in between, so
		// v (taken after the last change ended, before the next began) goes
		// with p.
		if f.pgen.Load() == g {
			return p, v, nil
		}
	}
}

// query runs q on the named plugin's code against the state that code is
// active on (see pluginView).
func (f *fsm) query(ctx context.Context, name string, q []byte) (abi.Result, error) {
	for {
		p, view, err := f.pluginView(ctx, name)
		if err != nil {
			return abi.Result{}, err
		}
		if p == nil {
			return abi.Result{}, fmt.Errorf("%w %q", ErrUnknownPlugin, name)
		}
		var st plugin.ReadStore = emptyStore{}
		if ns, ok := view.Namespace(name); ok {
			st = ns
		}
		res, err := p.pool.Query(ctx, st, q)
		switch {
		case errors.Is(err, plugin.ErrClosed):
			continue // replaced or removed meanwhile: again, as of the change
		case errors.Is(err, plugin.ErrTimeLimit):
			return res, fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return res, err
	}
}

// stopsApplying reports whether a plugin call's error must stop the node
// applying (fail-stop) rather than become the entry's result: it is not
// deterministic.
func stopsApplying(err error) bool {
	return errors.Is(err, plugin.ErrTimeLimit) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// failStop records that the node stopped applying the log. Runs on the FSM
// goroutine; the node hands leadership over from its own goroutine.
func (f *fsm) failStop(what string, err error) {
	f.failOnce.Do(func() {
		msg := fmt.Sprintf("%s: %v", what, err)
		f.failed.Store(&msg)
		close(f.failedCh)
		f.log.Error("FAIL-STOP: this node stopped applying the Raft log; raise the plugin call timeout or deploy a fixed plugin, then restart it", "at", what, "err", err)
	})
}

// stopped returns nil, or ErrStopped with the reason after a fail-stop.
func (f *fsm) stopped() error {
	if msg := f.failed.Load(); msg != nil {
		return fmt.Errorf("%w: %s", ErrStopped, *msg)
	}
	return nil
}

// applyCommands applies a run of commands for one plugin. n entries got a
// result; a non-nil error is a fail-stop at the entry after them.
func (f *fsm) applyCommands(logs []*raft.Log, envs []envelope, out []any) (n int, err error) {
	p := f.plugin(envs[0].Plugin)
	if p == nil {
		err := fmt.Errorf("%w %q", ErrUnknownPlugin, envs[0].Plugin)
		for k := range out {
			out[k] = &applyResult{err: err}
		}
		return len(out), nil
	}
	f.entries = f.entries[:0]
	for k, l := range logs {
		// "now" is the leader's stamp, made monotonic: the same on every node.
		f.lastTime = max(f.lastTime, envs[k].Time)
		f.entries = append(f.entries, abi.Entry{Index: l.Index, Term: l.Term, Time: f.lastTime, Data: envs[k].Payload})
	}
	results, err := p.inst.Apply(context.Background(), f.store.Namespace(p.name), f.entries)
	if f.metrics != nil {
		f.metrics.observeResults(p.name, results)
	}
	for k, r := range results {
		out[k] = &applyResult{res: r}
	}
	clear(f.entries) // do not keep payloads alive
	return len(results), err
}

// loadDeploys loads the modules of the batch's deploy entries into f.loaded,
// before the batch takes the store lock. A deploy of the module a plugin
// already runs (and that no earlier entry of the batch changes) is a no-op:
// nothing is loaded for it.
func (f *fsm) loadDeploys(logs []*raft.Log) {
	f.loaded = append(f.loaded[:0], make([]loadedModule, len(logs))...)
	var touched map[string]bool // names an earlier entry deploys or removes
	for i, l := range logs {
		e := &f.envelops[i]
		if l.Type != raft.LogCommand || (e.Kind != kindDeploy && e.Kind != kindRemovePlugin) {
			continue
		}
		if touched == nil {
			touched = map[string]bool{}
		}
		if e.Kind == kindDeploy && !touched[e.Plugin] {
			if old := f.plugin(e.Plugin); old != nil && old.mod.Hash == plugin.HashOf(e.Payload) {
				continue
			}
		}
		touched[e.Plugin] = true
		if e.Kind == kindDeploy {
			p, err := f.load(context.Background(), e.Plugin, e.Payload)
			f.loaded[i] = loadedModule{p: p, err: err}
		}
	}
}

// closeLoaded closes the modules loaded for the batch that were not used.
func (f *fsm) closeLoaded() {
	for i := range f.loaded {
		if p := f.loaded[i].p; p != nil {
			p.close(context.Background())
		}
	}
	clear(f.loaded)
	f.loaded = f.loaded[:0]
}

// load loads a module and gives it its engine. The error wraps
// plugin.ErrTimeLimit when the module's initialiser or raftkv_info ran past
// the time limit (see stopsApplying), and plugin.ErrInvalidModule when it is
// refused.
func (f *fsm) load(ctx context.Context, name string, wasm []byte) (*active, error) {
	mod, err := f.rt.Load(ctx, wasm)
	if err != nil {
		return nil, err
	}
	inst, pool, err := f.engine(ctx, mod)
	if err != nil {
		mod.Close(ctx)
		return nil, err
	}
	return &active{name: name, mod: mod, inst: inst, pool: pool}, nil
}

// deploy activates the module of a deploy entry, which loadDeploys loaded
// (ld). A non-nil error is a fail-stop at this entry: a wall-clock limit was
// exceeded, which must not become a result (a faster node would activate
// the module). Refusals are results, the same on every node.
func (f *fsm) deploy(l *raft.Log, e *envelope, ld *loadedModule) (*applyResult, error) {
	ctx := context.Background()
	p, err := ld.p, ld.err
	*ld = loadedModule{} // p is ours now
	old := f.plugin(e.Plugin)
	if p == nil && err == nil { // not loaded: a no-op when the batch began
		if old != nil && old.mod.Hash == plugin.HashOf(e.Payload) {
			return &applyResult{res: abi.Result{Data: []byte(old.mod.Hash)}}, nil
		}
		p, err = f.load(ctx, e.Plugin, e.Payload)
	}
	if err != nil {
		if stopsApplying(err) {
			return nil, fmt.Errorf("deploying plugin %q: %w", e.Plugin, err)
		}
		return &applyResult{err: fmt.Errorf("%w: %w", ErrInvalid, err)}, nil
	}
	if old != nil && old.mod.Hash == p.mod.Hash {
		p.close(ctx)
		return &applyResult{res: abi.Result{Data: []byte(old.mod.Hash)}}, nil // already active: no-op
	}
	p.since = l.Index
	if old != nil {
		mig := abi.Migration{FromHash: old.mod.Hash, FromVersion: old.mod.Info.Version, Index: l.Index}
		meta := abi.Entry{Index: l.Index, Term: l.Term, Time: f.lastTime}
		res, err := p.inst.Migrate(ctx, f.store.Namespace(e.Plugin), mig, meta)
		if err == nil && !res.OK() {
			err = fmt.Errorf("%w: migration refused the upgrade: %w", ErrInvalid, res.Err())
		}
		if err != nil {
			p.close(ctx)
			if stopsApplying(err) {
				return nil, fmt.Errorf("migrating plugin %q: %w", e.Plugin, err)
			}
			if !errors.Is(err, ErrInvalid) {
				err = fmt.Errorf("%w: migration failed: %w", ErrInvalid, err)
			}
			return &applyResult{err: err}, nil
		}
	}
	f.install(p)
	f.log.Info("plugin activated", "plugin", e.Plugin, "hash", p.mod.Hash, "index", l.Index, "engine", p.engine())
	return &applyResult{res: abi.Result{Data: []byte(p.mod.Hash)}}, nil
}

// engine returns what runs mod's code on this node: the Go implementation
// that Config.NativePlugins gives for its hash, or else instances of the
// module. Either way mod was loaded (validated, compiled, described) from its
// wasm, as on every node.
func (f *fsm) engine(ctx context.Context, mod *plugin.Module) (applier, querier, error) {
	if p := f.natives[mod.Hash]; p != nil {
		return plugin.NewNative(p), plugin.NewNativePool(p, f.queryN), nil
	}
	inst, err := f.rt.Instantiate(ctx, mod)
	if err != nil {
		return nil, nil, err
	}
	return inst, f.rt.NewPool(mod, f.queryN), nil
}

// engine says what runs the plugin's code: "wasm" or "native".
func (p *active) engine() string {
	if _, ok := p.inst.(*plugin.Native); ok {
		return "native"
	}
	return "wasm"
}

// setPlugin publishes the plugins with name bound to p (removed if p is nil)
// and returns the plugin it replaces. FSM goroutine only.
func (f *fsm) setPlugin(name string, p *active) (old *active) {
	cur := *f.plugins.Load()
	next := maps.Clone(cur)
	if next == nil {
		next = map[string]*active{}
	}
	old = cur[name]
	if p == nil {
		delete(next, name)
	} else {
		next[name] = p
	}
	f.plugins.Store(&next)
	return old
}

// install activates p and closes the plugin it replaces.
func (f *fsm) install(p *active) {
	if old := f.setPlugin(p.name, p); old != nil {
		old.close(context.Background())
	}
}

func (f *fsm) removePlugin(e *envelope) *applyResult {
	var req removePlugin
	if err := abi.Unmarshal(e.Payload, &req); err != nil {
		return &applyResult{err: fmt.Errorf("%w: remove plugin: %w", ErrInvalid, err)}
	}
	if f.plugin(e.Plugin) == nil {
		return &applyResult{err: fmt.Errorf("%w: plugin %q", ErrNotFound, e.Plugin)}
	}
	f.setPlugin(e.Plugin, nil).close(context.Background())
	if req.DropState {
		f.store.Drop(e.Plugin)
	}
	return &applyResult{}
}

func (f *fsm) trustChange(e *envelope) *applyResult {
	var tc trustChange
	if err := abi.Unmarshal(e.Payload, &tc); err != nil {
		return &applyResult{err: fmt.Errorf("%w: trust change: %w", ErrInvalid, err)}
	}
	if e.Kind == kindTrustRemove {
		f.trust.Remove(tc.NodeID)
		f.trust.Revoke(tc.NodeID)
		f.trustChanged()
		return &applyResult{}
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(tc.Key))
	if err == nil {
		err = f.trust.Add(tc.NodeID, key)
	}
	if err != nil {
		return &applyResult{err: fmt.Errorf("%w: trust %s: %w", ErrInvalid, tc.NodeID, err)}
	}
	f.trustChanged()
	return &applyResult{}
}

func (f *fsm) trustChanged() {
	if f.onTrust != nil {
		f.onTrust()
	}
}

func (f *fsm) notifyApplied() {
	f.appliedMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
}

// appliedSignal returns the index the FSM has applied and a channel closed
// when it applies more.
func (f *fsm) appliedSignal() (uint64, <-chan struct{}) {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied.Load(), f.appliedCh
}

// plugin returns the active plugin called name, or nil. To run its code on
// the state, take both with pluginView.
func (f *fsm) plugin(name string) *active {
	return (*f.plugins.Load())[name]
}

func (f *fsm) pluginInfos() []PluginInfo {
	view := f.store.View()
	plugins := *f.plugins.Load()
	out := make([]PluginInfo, 0, len(plugins))
	for _, p := range plugins {
		info := PluginInfo{
			Name: p.name, ABIVersion: p.mod.ABIVersion, Version: p.mod.Info.Version, Description: p.mod.Info.Description,
			Hash: p.mod.Hash, Size: p.mod.Size, ActiveSince: p.since, HasMigrate: p.mod.HasMigrate,
		}
		if ns, ok := view.Namespace(p.name); ok {
			info.Keys = ns.Len()
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// release lets a fail-stopped ApplyBatch return so that Raft can shut down.
func (f *fsm) release() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
}

// close releases the plugins. Raft must be shut down: nothing applies anymore.
func (f *fsm) close() {
	f.release()
	plugins := *f.plugins.Load()
	f.plugins.Store(&map[string]*active{})
	for _, p := range plugins {
		p.close(context.Background())
	}
	f.closeLoaded()
}

// emptyStore is the state of a plugin that has never written anything.
type emptyStore struct{}

func (emptyStore) Get([]byte) ([]byte, uint64, bool)                           { return nil, 0, false }
func (emptyStore) Scan([]byte, []byte, int, func([]byte, []byte, uint64) bool) {}

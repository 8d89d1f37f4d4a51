package host

import (
	"context"
	"fmt"
	"log/slog"
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
// the FSM-owned applier and the query pool (see fsm.engine).
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

// close releases the plugin's engine.
func (p *active) close(ctx context.Context) {
	p.inst.Close(ctx)
	p.pool.Close(ctx)
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

	mu       sync.RWMutex // guards plugins for readers; the FSM goroutine writes
	plugins  map[string]*active
	lastTime int64 // FSM goroutine only: monotonic "now" given to plugins

	applied   atomic.Uint64
	appliedMu sync.Mutex
	appliedCh chan struct{} // closed and replaced after each batch

	failed   atomic.Pointer[string] // fail-stop reason
	stop     chan struct{}          // closed at shutdown: releases a fail-stopped apply
	entries  []abi.Entry
	envelops []envelope
}

func newFSM(log *slog.Logger, rt *plugin.Runtime, trust *transport.Trust, queryN int, onPeers func(raft.Configuration)) *fsm {
	return &fsm{
		log: log, rt: rt, store: state.New(), trust: trust, queryN: queryN, onPeers: onPeers,
		plugins: map[string]*active{}, appliedCh: make(chan struct{}), stop: make(chan struct{}),
	}
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in order. Runs on raft's FSM goroutine.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if f.failed.Load() != nil {
		<-f.stop // fail-stop: never apply past the failure
		for i := range out {
			out[i] = &applyResult{err: ErrStopped}
		}
		return out
	}
	f.envelops = f.envelops[:0]
	for _, l := range logs {
		var e envelope
		if l.Type == raft.LogCommand {
			var err error
			if e, err = decodeEnvelope(l.Data); err != nil {
				e = envelope{} // kind 0: reported below
			}
		}
		f.envelops = append(f.envelops, e)
	}
	start := time.Now()
	f.store.Update(func() {
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
				if err := f.applyCommands(logs[i:j], f.envelops[i:j], out[i:j]); err != nil {
					f.failStop(err, logs[i].Index)
					for k := i; k < len(logs); k++ {
						if out[k] == nil {
							out[k] = &applyResult{err: ErrStopped}
						}
					}
					i = len(logs)
					continue
				}
				i = j
			case kindDeploy:
				out[i] = f.deploy(l, e)
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
	})
	f.notifyApplied()
	if f.metrics != nil {
		f.metrics.applyBatch.Observe(time.Since(start).Seconds())
		f.metrics.batchSize.Observe(float64(len(logs)))
	}
	return out
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

func (f *fsm) failStop(err error, index uint64) {
	msg := fmt.Sprintf("applying log index %d: %v", index, err)
	f.failed.Store(&msg)
	f.log.Error("FAIL-STOP: this node stopped applying the Raft log; raise the plugin call timeout or deploy a fixed plugin, then restart it", "index", index, "err", err)
}

func (f *fsm) applyCommands(logs []*raft.Log, envs []envelope, out []any) error {
	p := f.plugins[envs[0].Plugin]
	if p == nil {
		err := fmt.Errorf("%w %q", ErrUnknownPlugin, envs[0].Plugin)
		for k := range out {
			out[k] = &applyResult{err: err}
		}
		return nil
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
	return err
}

func (f *fsm) deploy(l *raft.Log, e *envelope) *applyResult {
	mod, err := f.rt.Load(context.Background(), e.Payload)
	if err != nil {
		return &applyResult{err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	old := f.plugins[e.Plugin]
	if old != nil && old.mod.Hash == mod.Hash {
		return &applyResult{res: abi.Result{Data: []byte(mod.Hash)}} // already active: no-op
	}
	inst, pool, err := f.engine(context.Background(), mod)
	if err != nil {
		return &applyResult{err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	if old != nil {
		mig := abi.Migration{FromHash: old.mod.Hash, FromVersion: old.mod.Info.Version, Index: l.Index}
		meta := abi.Entry{Index: l.Index, Term: l.Term, Time: f.lastTime}
		res, err := inst.Migrate(context.Background(), f.store.Namespace(e.Plugin), mig, meta)
		if err == nil && !res.OK() {
			err = fmt.Errorf("%w: migration refused the upgrade: %v", ErrInvalid, res.Err())
		}
		if err != nil {
			inst.Close(context.Background())
			pool.Close(context.Background())
			return &applyResult{err: err}
		}
	}
	p := &active{name: e.Plugin, mod: mod, inst: inst, pool: pool, since: l.Index}
	f.install(p)
	f.log.Info("plugin activated", "plugin", e.Plugin, "hash", mod.Hash, "index", l.Index, "engine", p.engine())
	return &applyResult{res: abi.Result{Data: []byte(mod.Hash)}}
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

func (f *fsm) install(p *active) {
	f.mu.Lock()
	old := f.plugins[p.name]
	f.plugins[p.name] = p
	f.mu.Unlock()
	if old != nil {
		old.close(context.Background())
	}
}

func (f *fsm) removePlugin(e *envelope) *applyResult {
	var req removePlugin
	if err := abi.Unmarshal(e.Payload, &req); err != nil {
		return &applyResult{err: fmt.Errorf("%w: remove plugin: %v", ErrInvalid, err)}
	}
	f.mu.Lock()
	old := f.plugins[e.Plugin]
	delete(f.plugins, e.Plugin)
	f.mu.Unlock()
	if old == nil {
		return &applyResult{err: fmt.Errorf("%w: plugin %q", ErrNotFound, e.Plugin)}
	}
	old.close(context.Background())
	if req.DropState {
		f.store.Drop(e.Plugin)
	}
	return &applyResult{}
}

func (f *fsm) trustChange(e *envelope) *applyResult {
	var tc trustChange
	if err := abi.Unmarshal(e.Payload, &tc); err != nil {
		return &applyResult{err: fmt.Errorf("%w: trust change: %v", ErrInvalid, err)}
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
		return &applyResult{err: fmt.Errorf("%w: trust %s: %v", ErrInvalid, tc.NodeID, err)}
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

// plugin returns the active plugin name, for queries.
func (f *fsm) plugin(name string) *active {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.plugins[name]
}

func (f *fsm) pluginInfos() []PluginInfo {
	view := f.store.View() // before f.mu: ApplyBatch holds the store lock while it takes f.mu
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]PluginInfo, 0, len(f.plugins))
	for _, p := range f.plugins {
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
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.plugins {
		p.close(context.Background())
	}
	f.plugins = map[string]*active{}
}

// emptyStore is the state of a plugin that has never written anything.
type emptyStore struct{}

func (emptyStore) Get([]byte) ([]byte, uint64, bool)                           { return nil, 0, false }
func (emptyStore) Scan([]byte, []byte, int, func([]byte, []byte, uint64) bool) {}

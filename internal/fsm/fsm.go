package fsm

import (
	"context"
	"encoding/binary"
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
	"github.com/raftkv/raftkv/host/trust"
)

// Result is what the FSM returns for each log entry (the raft future's
// Response).
type Result struct {
	Res abi.Result
	Err error // host-level failure: unknown plugin, invalid deploy, ...
}

// Plugin is a plugin in use: its module and the engine that runs its code,
// the FSM-owned applier and the query pool (see FSM.engine). It owns its
// module: close releases the engine and the compiled code. Readers get it
// from FSM.Plugin and must not keep it past a change of the plugin.
type Plugin struct {
	name  string
	mod   *plugin.Module
	inst  applier
	pool  querier
	since uint64 // log index of the deploy entry
	// quarantined: its commands and queries are refused (host's
	// Node.QuarantinePlugin) until a module is deployed again. Set on the FSM goroutine before the
	// plugin is published, never changed after.
	quarantined bool
}

// applier runs a plugin's apply and migrate calls, on the FSM goroutine:
// a *plugin.Instance, or a *plugin.Native for a module in
// hostseam.SetNativePlugins.
type applier interface {
	Apply(ctx context.Context, st plugin.Store, entries []abi.Entry) ([]abi.Result, error)
	Migrate(ctx context.Context, st plugin.Store, mig abi.Migration, meta abi.Entry) (abi.Result, error)
	Close(ctx context.Context) error
}

// querier runs a plugin's read-only queries, concurrently: a *plugin.Pool,
// or a *plugin.NativePool. After Close a query fails with plugin.ErrClosed.
type querier interface {
	Query(ctx context.Context, st plugin.ReadStore, q []byte) (abi.Result, error)
	Validate(ctx context.Context, cmd []byte) (abi.Result, error) // validate.go
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
func (p *Plugin) close(ctx context.Context) {
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
	Bytes       int64  `json:"bytes"` // the state's keys and values
	// InfoName is the name the module gives itself (raftkv_info).
	InfoName string `json:"info_name,omitempty"`
	// Limits are the plugin's replicated limits; Counters what they cut
	// on this node since the module was loaded.
	Limits      plugin.Limits   `json:"limits"`
	Counters    plugin.Counters `json:"counters"`
	Quarantined bool            `json:"quarantined,omitempty"`
}

// FSM is raftkv's raft.BatchingFSM: host-level entries are handled here,
// plugin commands are handed to the plugin in runs of consecutive entries, one
// plugin call per run.
type FSM struct {
	log        *slog.Logger
	rt         *plugin.Runtime
	store      *state.Store
	trust      *trust.Trust
	queryN     int
	natives    map[string]plugin.Code // Config.Natives
	onPeers    func(raft.Configuration)
	onTrust    func(index uint64)
	trustFloor uint64 // Config.TrustFloor
	metrics    *Metrics

	// plugins holds the active plugins by name in a map that is replaced,
	// never modified: the FSM goroutine publishes a new one when a plugin
	// changes, readers load it without a lock.
	plugins atomic.Pointer[map[string]*Plugin]
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

	failed atomic.Pointer[string] // fail-stop reason
	// failMu guards failedCh and recoveredCh: failedCh is closed at a
	// fail-stop (and replaced when the node recovers), recoveredCh closed
	// when it recovers from it (quarantine.go).
	failMu      sync.Mutex
	failedCh    chan struct{}
	recoveredCh chan struct{}
	stop        chan struct{} // closed at shutdown
	// FSM goroutine only: the plugin of the entry the node stopped at ("" if
	// no quarantine can recover it) and the entries from it on, kept to be
	// applied when a quarantine entry for that plugin comes (quarantine.go).
	failedPlugin string
	// recovering is the plugin whose quarantine is ending a fail-stop, while
	// recoverBatch applies the held entries: that quarantine entry's result
	// is a success even when the plugin never became active (its deploy was
	// the entry that stopped the node).
	recovering   string
	held         []*raft.Log
	heldBytes    int
	heldOverflow bool
	entries      []abi.Entry
	envelops     []Envelope
	loaded       []loadedModule                             // per entry of the batch being applied
	sessions     sessions                                   // the idempotency keys' results (sessions.go)
	addrs        atomic.Pointer[map[string]MemberAddresses] // replaced, never modified (addresses.go)
	once         []int                                      // keyedRun: per entry, its own index if answered from the table, else -1
	digests      digestLog                                  // the state at the last digest-check entries (digest.go)
}

// loadedModule is a deploy entry's module, loaded and given its engine before
// the batch takes the store lock: compiling takes seconds, and readers of the
// state must not wait for it. Loading depends on the module's bytes only, so
// doing it early changes no result.
type loadedModule struct {
	p   *Plugin // nil if nothing was loaded
	err error   // the load failed
}

// Config is what an FSM is built from. Log, Runtime and Trust are
// required; the rest may be left zero.
type Config struct {
	Log     *slog.Logger
	Runtime *plugin.Runtime // loads the plugins' modules
	// Trust is the node's trust list: trust entries and snapshots change
	// it (the transport reads it).
	Trust *trust.Trust
	// QueryInstances is how many instances per plugin serve queries.
	QueryInstances int
	// Natives runs a module of that hash with this Go code instead of its
	// wasm (hostseam.SetNativePlugins: benchmarks and differential
	// tests); read-only.
	Natives map[string]plugin.Code
	// OnPeers is called with each committed configuration change, and
	// OnTrust with the log index of each change of the trust list, on the
	// FSM goroutine.
	OnPeers func(raft.Configuration)
	OnTrust func(index uint64)
	// TrustFloor is the log index of the trust list the node had applied
	// before it restarted (host's trust.json): a restore of an older
	// snapshot keeps that list (see Restore).
	TrustFloor uint64
	Metrics    *Metrics // nil: none
}

// New returns an FSM with no plugin and an empty state.
func New(cfg Config) *FSM {
	f := &FSM{
		log: cfg.Log, rt: cfg.Runtime, store: state.New(), trust: cfg.Trust, queryN: cfg.QueryInstances,
		natives: cfg.Natives, onPeers: cfg.OnPeers, onTrust: cfg.OnTrust, trustFloor: cfg.TrustFloor, metrics: cfg.Metrics,
		appliedCh: make(chan struct{}), failedCh: make(chan struct{}), recoveredCh: make(chan struct{}), stop: make(chan struct{}),
	}
	f.plugins.Store(&map[string]*Plugin{})
	f.sessions = newSessions(f.store)
	return f
}

var _ raft.BatchingFSM = (*FSM)(nil)

// Apply applies one committed entry (raft.FSM): ApplyBatch of one.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in order. Runs on raft's FSM goroutine.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	if f.failed.Load() != nil {
		return f.applyStopped(logs) // quarantine.go: never apply past the failure, unless quarantined
	}
	out := make([]any, len(logs))
	start := time.Now()
	f.envelops = f.envelops[:0]
	changes := false // the batch deploys or removes a plugin
	check := false   // the batch has a digest-check entry
	for _, l := range logs {
		var e Envelope
		if l.Type == raft.LogCommand {
			var err error
			if e, err = decodeEnvelope(l.Data); err != nil {
				e = Envelope{} // kind 0: reported below
			}
			changes = changes || changesPlugins(e.Kind)
			check = check || e.Kind == KindDigestCheck
		}
		f.envelops = append(f.envelops, e)
	}
	if check {
		// The digests are of the state as of the check entry: the batch is
		// split after it, and the state recorded in between.
		if k := checkIndex(f.envelops); k < len(logs)-1 {
			return append(f.ApplyBatch(logs[:k+1]), f.ApplyBatch(logs[k+1:])...)
		}
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
	if check && f.failed.Load() == nil {
		f.recordDigests(logs[len(logs)-1].Index)
	}
	f.notifyApplied()
	if f.metrics != nil {
		f.metrics.applyBatch.Observe(time.Since(start).Seconds())
		f.metrics.batchSize.Observe(float64(len(logs)))
	}
	return out
}

// applyLocked applies the batch under the store lock.
func (f *FSM) applyLocked(logs []*raft.Log, out []any) {
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
		if e.Kind != KindCommand {
			f.lastTime = max(f.lastTime, e.Time)
		}
		switch e.Kind {
		case KindCommand:
			j := i + 1
			for j < len(logs) && logs[j].Type == raft.LogCommand && f.envelops[j].Kind == KindCommand && f.envelops[j].Plugin == e.Plugin {
				j++
			}
			if n, err := f.applyCommands(logs[i:j], f.envelops[i:j], out[i:j]); err != nil {
				f.stopAt(logs, i+n, err, out)
				return
			}
			i = j
		case KindDeploy:
			r, err := f.deploy(l, e, &f.loaded[i])
			if err != nil {
				f.stopAt(logs, i, err, out)
				return
			}
			out[i] = r
			i++
		case KindSetLimits:
			r, err := f.setLimits(l, e, &f.loaded[i])
			if err != nil {
				f.stopAt(logs, i, err, out)
				return
			}
			out[i] = r
			i++
		case KindRemovePlugin:
			out[i] = f.removePlugin(e)
			i++
		case KindQuarantine:
			out[i] = f.quarantine(e)
			i++
		case KindTrustAdd, KindTrustRemove:
			out[i] = f.trustChange(e, l.Index)
			i++
		case KindAddresses:
			out[i] = f.setAddresses(e)
			i++
		case KindDigestCheck: // changes nothing: ApplyBatch records the state once applied
			out[i] = &Result{Res: abi.Result{Data: binary.BigEndian.AppendUint64(nil, l.Index)}}
			i++
		default: // undecodable (kind 0 stands for it) or of a kind this node does not know
			why := fmt.Sprintf("unknown kind %d", e.Kind)
			if _, err := decodeEnvelope(l.Data); err != nil {
				why = errors.Unwrap(err).Error()
			}
			out[i] = &Result{Err: fmt.Errorf("%w: undecodable log entry %d: %s", ErrInvalid, l.Index, why)}
			i++
		}
	}
	f.applied.Store(logs[len(logs)-1].Index) // under the store lock: see view
}

// stopAt fail-stops at logs[k]: the entries before it are applied, it and
// the rest are not, and never will be on this run of the node.
func (f *FSM) stopAt(logs []*raft.Log, k int, err error, out []any) {
	// Entries between logs[k-1] and logs[k] are of kinds Raft does not hand
	// over (no-ops, barriers): the state reflects them.
	f.applied.Store(logs[k].Index - 1)
	f.failedPlugin = ""
	if logs[k].Type == raft.LogCommand {
		f.failedPlugin = f.envelops[k].Plugin
	}
	f.hold(logs[k:])
	f.failStop(fmt.Sprintf("applying log index %d", logs[k].Index), err)
	stopped := f.Stopped()
	for ; k < len(logs); k++ {
		if out[k] == nil {
			out[k] = &Result{Err: stopped}
		}
	}
}

// View returns a view of the state and the index it reflects.
func (f *FSM) View() (*state.View, uint64) {
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
func (f *FSM) pluginView(ctx context.Context, name string) (*Plugin, *state.View, error) {
	for {
		g := f.pgen.Load()
		if g&1 == 1 {
			_, ch := f.AppliedSignal()
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

// Query runs q on the named plugin's code against the state that code is
// active on (see pluginView).
func (f *FSM) Query(ctx context.Context, name string, q []byte) (abi.Result, error) {
	for {
		p, view, err := f.pluginView(ctx, name)
		if err != nil {
			return abi.Result{}, err
		}
		if p == nil {
			return abi.Result{}, fmt.Errorf("%w %q", ErrUnknownPlugin, name)
		}
		if p.quarantined {
			return abi.Result{}, fmt.Errorf("%w: %q: deploy a module again to lift it", ErrQuarantined, name)
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
	return errors.Is(err, plugin.ErrTimeLimit) || errors.Is(err, plugin.ErrNodeLimit) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// failStop records that the node stopped applying the log. Runs on the FSM
// goroutine; the node hands leadership over from its own goroutine.
func (f *FSM) failStop(what string, err error) {
	f.failMu.Lock()
	defer f.failMu.Unlock()
	if f.failed.Load() != nil {
		return
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	f.failed.Store(&msg)
	close(f.failedCh)
	f.recoveredCh = make(chan struct{})
	if f.failedPlugin != "" {
		f.log.Error("FAIL-STOP: this node stopped applying the Raft log; if every voter stopped at this entry, quarantine the plugin (raftkv plugin quarantine NAME); else restart this node once the cause is fixed", "at", what, "plugin", f.failedPlugin, "err", err)
	} else {
		f.log.Error("FAIL-STOP: this node stopped applying the Raft log; restart it once the cause is fixed", "at", what, "err", err)
	}
}

// Stopped returns nil, or ErrStopped with the reason after a fail-stop.
func (f *FSM) Stopped() error {
	if msg := f.failed.Load(); msg != nil {
		return fmt.Errorf("%w: %s", ErrStopped, *msg)
	}
	return nil
}

// applyCommands applies a run of commands for one plugin. n entries got a
// result; a non-nil error is a fail-stop at the entry after them.
func (f *FSM) applyCommands(logs []*raft.Log, envs []Envelope, out []any) (n int, err error) {
	p := f.Plugin(envs[0].Plugin)
	if p == nil || p.quarantined {
		err := fmt.Errorf("%w %q", ErrUnknownPlugin, envs[0].Plugin)
		if p != nil {
			err = fmt.Errorf("%w: %q: deploy a module again to lift it", ErrQuarantined, p.name)
		}
		for k := range out {
			out[k] = &Result{Err: err}
		}
		return len(out), nil
	}
	f.entries = f.entries[:0]
	keyed := false
	for k, l := range logs {
		// "now" is the leader's stamp, made monotonic: the same on every node.
		f.lastTime = max(f.lastTime, envs[k].Time)
		if envs[k].Key != "" {
			keyed = true
			break
		}
		f.entries = append(f.entries, abi.Entry{Index: l.Index, Term: l.Term, Time: f.lastTime, Data: envs[k].Payload})
	}
	if keyed {
		return f.applyKeyed(p, logs, envs, out)
	}
	results, err := p.inst.Apply(context.Background(), f.store.Namespace(p.name), f.entries)
	if f.metrics != nil {
		f.metrics.observeResults(p.name, results)
	}
	for k, r := range results {
		out[k] = &Result{Res: r}
	}
	clear(f.entries) // do not keep payloads alive
	return len(results), err
}

// applyKeyed is applyCommands for a run in which some commands carry an
// idempotency key: a command whose key has a recorded result is not
// applied and gets that result; the others are applied, and the keyed ones
// recorded, each with its own entry's time.
//
// The table must read as if the entries were applied one at a time,
// whatever batches Raft made of them on this node: recording a result can
// evict older records (by age or by the table's bounds), so a command whose
// key is in the table, or repeats the key of an earlier command of the
// batch, is looked up only once every earlier command has recorded. The
// commands are applied in runs (one guest call each), and a run ends
// before such a command when an earlier command of the run records: an
// extra guest call per retried command, and only then.
func (f *FSM) applyKeyed(p *Plugin, logs []*raft.Log, envs []Envelope, out []any) (n int, err error) {
	for n < len(logs) {
		m, err := f.keyedRun(p, logs[n:], envs[n:], out[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// keyedRun applies the longest prefix of logs that applyKeyed can apply in
// one guest call, and returns how many entries that was.
func (f *FSM) keyedRun(p *Plugin, logs []*raft.Log, envs []Envelope, out []any) (n int, err error) {
	f.entries = f.entries[:0]
	f.once = f.once[:0]
	var recording map[string]bool // keys the run's applied commands record
	for k, l := range logs {
		// "now" is the leader's stamp, made monotonic: the same on every
		// node (taking an entry's time twice, when a run ends before it,
		// changes nothing).
		f.lastTime = max(f.lastTime, envs[k].Time)
		if key := envs[k].Key; key != "" {
			if len(recording) > 0 && (recording[key] || f.sessions.has(key)) {
				logs = logs[:k] // looked up after the run records (see applyKeyed)
				break
			}
			if r, ok := f.sessions.lookup(key, p.name, envs[k].Payload); ok {
				out[k] = r
				f.once = append(f.once, k)
				if f.metrics != nil {
					f.metrics.idempotentReplays.Inc()
				}
				continue
			}
			if recording == nil {
				recording = make(map[string]bool)
			}
			recording[key] = true
		}
		f.once = append(f.once, -1)
		f.entries = append(f.entries, abi.Entry{Index: l.Index, Term: l.Term, Time: f.lastTime, Data: envs[k].Payload})
	}
	results, err := p.inst.Apply(context.Background(), f.store.Namespace(p.name), f.entries)
	if f.metrics != nil {
		f.metrics.observeResults(p.name, results)
	}
	defer clear(f.entries) // do not keep payloads alive
	applied := 0           // entries of f.entries with a result
	for k := range logs {
		if f.once[k] == k {
			continue // answered from the table
		}
		if applied == len(results) {
			return k, err // a fail-stop at this entry
		}
		r := results[applied]
		at := f.entries[applied].Time
		applied++
		out[k] = &Result{Res: r}
		if key := envs[k].Key; key != "" {
			f.sessions.record(key, p.name, envs[k].Payload, logs[k].Index, at, r)
		}
	}
	return len(logs), err
}

// loadDeploys loads the modules of the batch's deploy and set-limits
// entries into f.loaded, before the batch takes the store lock. A deploy of
// the module and limits a plugin already runs (and that no earlier entry of
// the batch changes) is a no-op: nothing is loaded for it; nor for a
// set-limits entry of a plugin an earlier entry of the batch changes (it is
// loaded when applied, from the module active then).
func (f *FSM) loadDeploys(logs []*raft.Log) {
	f.loaded = append(f.loaded[:0], make([]loadedModule, len(logs))...)
	var touched map[string]bool // names an earlier entry deploys or removes
	for i, l := range logs {
		e := &f.envelops[i]
		if l.Type != raft.LogCommand || !changesPlugins(e.Kind) {
			continue
		}
		if touched == nil {
			touched = map[string]bool{}
		}
		old := f.Plugin(e.Plugin)
		if touched[e.Plugin] {
			old = nil // not known before the entries before it are applied
		}
		switch e.Kind {
		case KindDeploy:
			spec, err := decodeDeploySpec(e.Payload)
			if err != nil {
				break // refused when applied
			}
			if old == nil || old.mod.Hash != plugin.HashOf(spec.Wasm) || old.mod.Limits != spec.Limits || touched[e.Plugin] {
				p, err := f.load(context.Background(), e.Plugin, spec.Wasm, spec.Limits, l.Index)
				f.loaded[i] = loadedModule{p: p, err: err}
			}
		case KindSetLimits:
			var spec SetLimitsSpec
			if old != nil && abi.Unmarshal(e.Payload, &spec) == nil && old.mod.Limits != spec.Limits {
				p, err := f.load(context.Background(), e.Plugin, old.mod.Wasm, spec.Limits, l.Index)
				f.loaded[i] = loadedModule{p: p, err: err}
			}
		}
		touched[e.Plugin] = true
	}
}

// changesPlugins reports whether entries of kind k change the active
// plugins (their modules, limits or quarantine).
func changesPlugins(k Kind) bool {
	return k == KindDeploy || k == KindRemovePlugin || k == KindSetLimits || k == KindQuarantine
}

// closeLoaded closes the modules loaded for the batch that were not used.
func (f *FSM) closeLoaded() {
	for i := range f.loaded {
		if p := f.loaded[i].p; p != nil {
			p.close(context.Background())
		}
	}
	clear(f.loaded)
	f.loaded = f.loaded[:0]
}

// load loads a module with its replicated limits and gives it its engine.
// index is the log index of the entry that loads it (0 for a snapshot).
// The error wraps plugin.ErrTimeLimit when the module's initialiser or
// raftkv_info ran past the time limit and plugin.ErrNodeLimit when the
// limits exceed this node's configuration (see stopsApplying), and
// plugin.ErrInvalidModule or plugin.ErrLimits when it is refused.
func (f *FSM) load(ctx context.Context, name string, wasm []byte, lim plugin.Limits, index uint64) (*Plugin, error) {
	mod, err := f.rt.Load(ctx, wasm, plugin.LoadOptions{Name: name, Limits: lim, Index: index})
	if err != nil {
		return nil, err
	}
	inst, pool, err := f.engine(ctx, mod)
	if err != nil {
		mod.Close(ctx)
		return nil, err
	}
	return &Plugin{name: name, mod: mod, inst: inst, pool: pool}, nil
}

// deploy activates the module of a deploy entry, which loadDeploys loaded
// (ld). A non-nil error is a fail-stop at this entry: a wall-clock limit was
// exceeded, or this node's configuration refuses the limits, which must not
// become a result (another node would activate the module). Refusals are
// results, the same on every node.
func (f *FSM) deploy(l *raft.Log, e *Envelope, ld *loadedModule) (*Result, error) {
	ctx := context.Background()
	p, err := ld.p, ld.err
	*ld = loadedModule{} // p is ours now
	spec, serr := decodeDeploySpec(e.Payload)
	if serr != nil {
		if p != nil {
			p.close(ctx)
		}
		return &Result{Err: serr}, nil
	}
	old := f.Plugin(e.Plugin)
	refuse := func(err error) (*Result, error) {
		if p != nil {
			p.close(ctx)
		}
		return &Result{Err: err}, nil
	}
	hash := plugin.HashOf(spec.Wasm)
	if err := CheckPreconditions(e.Plugin, old, hash, spec.Create, spec.IfHash, true, abi.Info{}); err != nil {
		return refuse(err)
	}
	if old != nil && old.mod.Hash == hash && old.mod.Limits == spec.Limits && !old.quarantined {
		refuse(nil) // already active: a no-op
		return &Result{Res: abi.Result{Data: []byte(hash)}}, nil
	}
	if p == nil && err == nil { // not loaded when the batch began
		p, err = f.load(ctx, e.Plugin, spec.Wasm, spec.Limits, l.Index)
	}
	if err != nil {
		if stopsApplying(err) {
			return nil, fmt.Errorf("deploying plugin %q: %w", e.Plugin, err)
		}
		return &Result{Err: fmt.Errorf("%w: %w", ErrInvalid, err)}, nil
	}
	if err := CheckPreconditions(e.Plugin, old, hash, false, "", spec.Force, p.mod.Info); err != nil {
		return refuse(err)
	}
	p.since = l.Index
	if old != nil && old.mod.Hash == hash { // new limits (or lifting a quarantine): no migration
		p.since = old.since
	} else if old != nil {
		mig := abi.Migration{FromHash: old.mod.Hash, FromVersion: old.mod.Info.Version, Index: l.Index}
		meta := abi.Entry{Index: l.Index, Term: l.Term, Time: f.lastTime}
		res, err := p.inst.Migrate(ctx, f.store.Namespace(e.Plugin), mig, meta)
		if err == nil && !res.OK() {
			// %v, not %w: the answer is the deploy's refusal (400), not the
			// plugin's result (its code could read as "not found").
			err = fmt.Errorf("%w: migration refused the upgrade (the module %s, version %q, stays active): %v",
				ErrInvalid, old.mod.Hash[:min(12, len(old.mod.Hash))], old.mod.Info.Version, res.Err())
		}
		if err != nil {
			p.close(ctx)
			if stopsApplying(err) {
				return nil, fmt.Errorf("migrating plugin %q: %w", e.Plugin, err)
			}
			if !errors.Is(err, ErrInvalid) {
				err = fmt.Errorf("%w: migration failed: %w", ErrInvalid, err)
			}
			return &Result{Err: err}, nil
		}
	}
	f.install(p)
	f.log.Info("plugin activated", "plugin", e.Plugin, "hash", p.mod.Hash, "index", l.Index, "engine", p.Engine(), "limits", fmt.Sprintf("%+v", p.mod.Limits))
	return &Result{Res: abi.Result{Data: []byte(p.mod.Hash)}}, nil
}

// setLimits loads the plugin's active module again with the limits of a
// set-limits entry (loadDeploys may have loaded it: ld). The error is a
// fail-stop, as for deploy.
func (f *FSM) setLimits(l *raft.Log, e *Envelope, ld *loadedModule) (*Result, error) {
	ctx := context.Background()
	p, err := ld.p, ld.err
	*ld = loadedModule{}
	refuse := func(err error) (*Result, error) {
		if p != nil {
			p.close(ctx)
		}
		return &Result{Err: err}, nil
	}
	var spec SetLimitsSpec
	if err := abi.Unmarshal(e.Payload, &spec); err != nil {
		return refuse(fmt.Errorf("%w: set-limits entry: %w", ErrInvalid, err))
	}
	old := f.Plugin(e.Plugin)
	if old == nil {
		return refuse(fmt.Errorf("%w: plugin %q", ErrNotFound, e.Plugin))
	}
	if err := CheckPreconditions(e.Plugin, old, "", false, spec.IfHash, true, abi.Info{}); err != nil {
		return refuse(err)
	}
	if old.mod.Limits == spec.Limits {
		refuse(nil) // no change
		return &Result{Res: abi.Result{Data: []byte(old.mod.Hash)}}, nil
	}
	if p == nil && err == nil {
		p, err = f.load(ctx, e.Plugin, old.mod.Wasm, spec.Limits, l.Index)
	}
	if err != nil {
		if stopsApplying(err) {
			return nil, fmt.Errorf("changing the limits of plugin %q: %w", e.Plugin, err)
		}
		return &Result{Err: fmt.Errorf("%w: %w", ErrInvalid, err)}, nil
	}
	p.since = old.since
	p.quarantined = old.quarantined
	f.install(p)
	f.log.Info("plugin limits changed", "plugin", e.Plugin, "index", l.Index, "limits", fmt.Sprintf("%+v", p.mod.Limits))
	return &Result{Res: abi.Result{Data: []byte(p.mod.Hash)}}, nil
}

// engine returns what runs mod's code on this node: the Go implementation
// that hostseam.SetNativePlugins gave for its hash, or else instances of the
// module. Either way mod was loaded (validated, compiled, described) from its
// wasm, as on every node.
func (f *FSM) engine(ctx context.Context, mod *plugin.Module) (applier, querier, error) {
	if p := f.natives[mod.Hash]; p != nil {
		return plugin.NewNative(p), plugin.NewNativePool(p, f.queryN), nil
	}
	inst, err := f.rt.Instantiate(ctx, mod)
	if err != nil {
		return nil, nil, err
	}
	return inst, f.rt.NewPool(mod, f.queryN), nil
}

// Engine says what runs the plugin's code: "wasm" or "native".
func (p *Plugin) Engine() string {
	if _, ok := p.inst.(*plugin.Native); ok {
		return "native"
	}
	return "wasm"
}

// Module is the plugin's active module (its hash, limits, raftkv_info).
func (p *Plugin) Module() *plugin.Module { return p.mod }

// setPlugin publishes the plugins with name bound to p (removed if p is nil)
// and returns the plugin it replaces. FSM goroutine only.
func (f *FSM) setPlugin(name string, p *Plugin) (old *Plugin) {
	cur := *f.plugins.Load()
	next := maps.Clone(cur)
	if next == nil {
		next = map[string]*Plugin{}
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
func (f *FSM) install(p *Plugin) {
	if old := f.setPlugin(p.name, p); old != nil {
		old.close(context.Background())
	}
}

func (f *FSM) removePlugin(e *Envelope) *Result {
	var req RemovePlugin
	if err := abi.Unmarshal(e.Payload, &req); err != nil {
		return &Result{Err: fmt.Errorf("%w: remove plugin: %w", ErrInvalid, err)}
	}
	if f.Plugin(e.Plugin) == nil {
		// A plugin removed earlier with its state kept: drop_state deletes
		// the state (see host's Node.RemovePlugin).
		if _, ok := f.store.Lookup(e.Plugin); ok && req.DropState && ValidPluginName(e.Plugin) == nil {
			f.store.Drop(e.Plugin)
			return &Result{}
		}
		return &Result{Err: fmt.Errorf("%w: plugin %q", ErrNotFound, e.Plugin)}
	}
	f.setPlugin(e.Plugin, nil).close(context.Background())
	if req.DropState {
		f.store.Drop(e.Plugin)
	}
	return &Result{}
}

func (f *FSM) trustChange(e *Envelope, index uint64) *Result {
	var tc TrustChange
	if err := abi.Unmarshal(e.Payload, &tc); err != nil {
		return &Result{Err: fmt.Errorf("%w: trust change: %w", ErrInvalid, err)}
	}
	if e.Kind == KindTrustRemove {
		f.trust.Remove(tc.NodeID)
		f.trust.Revoke(tc.NodeID)
		f.trustChanged(index)
		return &Result{}
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(tc.Key))
	if err == nil {
		err = f.trust.Add(tc.NodeID, key)
	}
	if err != nil {
		return &Result{Err: fmt.Errorf("%w: trust %s: %w", ErrInvalid, tc.NodeID, err)}
	}
	f.trustChanged(index)
	return &Result{}
}

func (f *FSM) trustChanged(index uint64) {
	if f.onTrust != nil {
		f.onTrust(index)
	}
}

// Applied returns the index of the last entry applied (after a fail-stop,
// the one before the entry that failed).
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// Failure returns why the FSM stopped applying the log, "" while it
// applies it.
func (f *FSM) Failure() string {
	if msg := f.failed.Load(); msg != nil {
		return *msg
	}
	return ""
}

func (f *FSM) notifyApplied() {
	f.appliedMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
}

// AppliedSignal returns the index the FSM has applied and a channel closed
// when it applies more.
func (f *FSM) AppliedSignal() (uint64, <-chan struct{}) {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied.Load(), f.appliedCh
}

// Plugin returns the active plugin called name, or nil. To run its code on
// the state, use Query, which takes both as of the same point in the log
// (pluginView).
func (f *FSM) Plugin(name string) *Plugin {
	return (*f.plugins.Load())[name]
}

// PluginInfos describes the active plugins, in name order.
func (f *FSM) PluginInfos() []PluginInfo {
	view := f.store.View()
	plugins := *f.plugins.Load()
	out := make([]PluginInfo, 0, len(plugins))
	for _, p := range plugins {
		info := PluginInfo{
			Name: p.name, ABIVersion: p.mod.ABIVersion, Version: p.mod.Info.Version, Description: p.mod.Info.Description,
			Hash: p.mod.Hash, Size: p.mod.Size, ActiveSince: p.since, HasMigrate: p.mod.HasMigrate,
			InfoName: p.mod.Info.Name, Limits: p.mod.Limits, Counters: p.mod.Counters(), Quarantined: p.quarantined,
		}
		if ns, ok := view.Namespace(p.name); ok {
			info.Keys, info.Bytes = ns.Len(), ns.Bytes()
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KeptStates lists the namespaces that hold state but have no active plugin:
// the state of plugins removed without drop_state, in name order.
func (f *FSM) KeptStates() []KeptState {
	view := f.store.View()
	plugins := *f.plugins.Load()
	var out []KeptState
	for _, name := range view.Names() {
		if _, active := plugins[name]; active || ValidPluginName(name) != nil {
			continue // the host's own namespaces (.sessions) are no plugin's
		}
		if ns, ok := view.Namespace(name); ok && ns.Len() > 0 {
			out = append(out, KeptState{Name: name, Keys: ns.Len(), Bytes: ns.Bytes()})
		}
	}
	return out
}

// HasKeptState reports whether name has state but no active plugin.
func (f *FSM) HasKeptState(name string) bool {
	if f.Plugin(name) != nil || ValidPluginName(name) != nil {
		return false
	}
	ns, ok := f.store.View().Namespace(name)
	return ok && ns.Len() > 0
}

// Release lets a fail-stopped ApplyBatch return so that Raft can shut down.
func (f *FSM) Release() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
}

// Close releases the plugins. Raft must be shut down: nothing applies anymore.
func (f *FSM) Close() {
	f.Release()
	plugins := *f.plugins.Load()
	f.plugins.Store(&map[string]*Plugin{})
	for _, p := range plugins {
		p.close(context.Background())
	}
	f.closeLoaded()
}

// emptyStore is the state of a plugin that has never written anything.
type emptyStore struct{}

func (emptyStore) Get([]byte) ([]byte, uint64, bool)                           { return nil, 0, false }
func (emptyStore) Scan([]byte, []byte, int, func([]byte, []byte, uint64) bool) {}

// KeptState is the state of a removed plugin, kept because it was removed
// without drop_state.
type KeptState struct {
	Name  string `json:"name"`
	Keys  int    `json:"keys"`
	Bytes int64  `json:"bytes"` // its keys and values
}

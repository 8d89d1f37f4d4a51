package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Errors returned by this package.
var (
	// ErrTimeLimit means a plugin call ran longer than Config.CallTimeout. It is
	// not a result: the caller must stop applying the log (fail-stop).
	ErrTimeLimit = errors.New("plugin: call exceeded the wall-clock limit")
	// ErrInvalidModule wraps every reason a module is refused at load time.
	ErrInvalidModule = errors.New("plugin: invalid module")
	// ErrClosed is returned by calls on a closed runtime, pool or instance.
	ErrClosed = errors.New("plugin: closed")
	// ErrLimits wraps every reason Limits.Validate refuses limits.
	ErrLimits = errors.New("plugin: invalid limits")
	// ErrNodeLimit means a plugin's replicated Limits exceed what this node's
	// Config allows (Limits.MemoryPages over Config.MemoryLimitPages). It is
	// not a refusal of the module (other nodes may accept it): a caller
	// applying the log must stop (fail-stop) until the node is configured
	// like the others.
	ErrNodeLimit = errors.New("plugin: limits exceed this node's configuration")
)

// Config configures a Runtime.
type Config struct {
	// MemoryLimitPages caps each instance's memory, in 64 KiB pages.
	MemoryLimitPages uint32
	// CallTimeout bounds the wall-clock time of one entry of a guest call, or
	// of a query, migration or load call: a last resort against host bugs
	// (see DefaultConfig). A metered call's limit is the larger of
	// CallTimeout and FuelTime of its budget (Runtime.CallLimit), so that no
	// budget Limits.Validate accepts can make a plugin reach it on a node
	// that burns fuel at SlowFuelPerSecond or faster. Modules Trusted lists
	// run without it.
	CallTimeout time.Duration
	// CacheDir, if set, holds wazero's compiled code so that restarts do not
	// recompile modules.
	CacheDir string
	// CacheMaxBytes, if positive, bounds the files in CacheDir: after every
	// compile, and when the runtime starts, the oldest are removed until the
	// rest fit (a node uses DefaultCacheMaxBytes). Zero leaves it unbounded.
	CacheMaxBytes int64
	// Logger receives plugin log calls and guest stderr. Nil discards.
	Logger *slog.Logger
	// Trusted lists the sha256 (hex) of modules that run without fuel and
	// without wazero's termination checks, which cost about half of the
	// apply throughput of a Go plugin. A trusted module's overrun of
	// CallTimeout cannot be interrupted, and while its code runs without a
	// host call Go cannot preempt it, so a garbage collection's
	// stop-the-world waits for it: the whole process, Raft included, pauses
	// (TestLoopDoesNotPauseTheProcess shows the checks prevent it). So trust
	// only code shipped with raftkv (the embedded default plugin, which
	// calls the host for every command); every other module keeps the
	// checks. (A plugin an operator trusts is another thing: Limits.Trusted,
	// replicated, unmetered but with the checks.)
	Trusted map[string]bool
}

// DefaultConfig returns the defaults: 512 pages (32 MiB), no cache, and a
// wall-clock limit per entry or call of FuelTime(DefaultLimits().LoadFuel),
// 200 s.
//
// The wall-clock limit is a last resort against host bugs: fuel stops every
// metered call deterministically, and only a trusted module or a host
// function gone wrong should reach the limit. But how fast fuel burns
// depends on the machine and its load, by two orders of magnitude
// (BenchmarkFuelRate: 32 to 600 million units per second on a 2-core
// machine at load 14; about 2.5 million where three nodes shared a loaded
// 2-core machine, where 200 million units of load fuel ran past a 60 s limit
// on every node and stopped them all). So the default limit is derived from
// the default budgets: the largest of them, the load fuel, burns within it
// at SlowFuelPerSecond. A metered call whose budget is larger gets a limit
// to match (Runtime.CallLimit): otherwise a call that runs out of its fuel
// on a fast machine would stop a slow one.
func DefaultConfig() Config {
	return Config{MemoryLimitPages: 512, CallTimeout: FuelTime(DefaultLimits().LoadFuel)}
}

// SlowFuelPerSecond is the rate at which a metered call is assumed to burn
// fuel on the slowest machine a node runs on, under load: below the slowest
// rate seen (see DefaultConfig).
const SlowFuelPerSecond = 1_000_000

// FuelTime is how long a budget of fuel may take to burn, at
// SlowFuelPerSecond, in whole seconds rounded up.
func FuelTime(fuel uint64) time.Duration {
	return time.Duration((fuel+SlowFuelPerSecond-1)/SlowFuelPerSecond) * time.Second
}

// CallLimit is the wall-clock limit of one entry or call of m's code whose
// fuel budget is fuel (Limits.ApplyFuel for an entry, QueryFuel for a
// query or raftkv_validate, LoadFuel for the initialiser, raftkv_info and
// raftkv_migrate):
// Config.CallTimeout, or FuelTime(fuel) if m is metered and that is longer.
// So a metered plugin runs out of fuel, deterministically, before it can
// reach the limit, whatever budget it was deployed with, wherever fuel burns
// at SlowFuelPerSecond or faster; only a host bug, or a module without fuel
// (Limits.Trusted), reaches it. Modules Config.Trusted lists have no limit:
// 0.
func (r *Runtime) CallLimit(m *Module, fuel uint64) time.Duration {
	switch {
	case m.trusted:
		return 0
	case m.metered:
		return max(r.cfg.CallTimeout, FuelTime(fuel))
	}
	return r.cfg.CallTimeout
}

// StackSlots is the call-stack budget of every metered call (package meter:
// each call takes meter.FrameSlots of it, 4 + parameters + locals; 8 MiB of
// slots). Recursion deeper than that traps, at the same depth on every
// node, long before the engine's own stack limit.
const StackSlots = 1 << 20

// Validate reports a configuration error.
func (c Config) Validate() error {
	switch {
	case c.MemoryLimitPages < 16 || c.MemoryLimitPages > 65536:
		return fmt.Errorf("plugin: MemoryLimitPages %d out of range [16, 65536]", c.MemoryLimitPages)
	case c.CallTimeout <= 0:
		return fmt.Errorf("plugin: CallTimeout must be positive, got %v", c.CallTimeout)
	}
	return nil
}

// Runtime compiles and instantiates plugin modules. It is safe for
// concurrent use.
type Runtime struct {
	cfg       Config
	rt        wazero.Runtime // modules with termination checks
	fast      wazero.Runtime // trusted modules (Config.Trusted)
	cache     wazero.CompilationCache
	log       *slog.Logger
	wasiFns   map[string]bool // WASI functions the host provides
	open      atomic.Int64    // Modules loaded and not closed
	quiet     atomic.Uint64   // SetQuietThrough
	unmetered bool            // tests only (export_test.go): what metering costs
	trimMu    sync.Mutex      // one trimCache at a time
	closeOnce sync.Once
	closeErr  error
}

// NewRuntime creates a runtime with the raftkv host functions and WASI.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// NewRuntimeConfig picks the optimizing compiler where wazero has one and
	// the interpreter elsewhere. CloseOnContextDone lets a deadline stop a guest
	// stuck in a loop. wazero's cache keys include that flag, so both runtimes
	// share one cache safely.
	rc := wazero.NewRuntimeConfig().WithMemoryLimitPages(cfg.MemoryLimitPages)
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugin: compilation cache: %w", err)
		}
		cache = c
		rc = rc.WithCompilationCache(cache)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Runtime{
		cfg: cfg, cache: cache, log: log,
		rt:   wazero.NewRuntimeWithConfig(ctx, rc.WithCloseOnContextDone(true)),
		fast: wazero.NewRuntimeWithConfig(ctx, rc),
	}
	for _, rt := range []wazero.Runtime{r.rt, r.fast} {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			r.Close(ctx)
			return nil, fmt.Errorf("plugin: wasi: %w", err)
		}
		if err := instantiateHost(ctx, rt); err != nil {
			r.Close(ctx)
			return nil, err
		}
	}
	r.trimCache()
	r.wasiFns = make(map[string]bool)
	for name := range r.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		r.wasiFns[name] = true
	}
	return r, nil
}

// trimCache bounds the compiled-code cache to Config.CacheMaxBytes (see
// trimCache). A failure is logged: the cache only saves compile time.
func (r *Runtime) trimCache() {
	if r.cache == nil || r.cfg.CacheMaxBytes <= 0 {
		return
	}
	r.trimMu.Lock()
	defer r.trimMu.Unlock()
	removed, left, err := trimCache(r.cfg.CacheDir, r.cfg.CacheMaxBytes)
	if err != nil {
		r.log.Warn("plugin: compiled-code cache: cannot trim", "dir", r.cfg.CacheDir, "err", err)
	} else if removed > 0 {
		r.log.Info("plugin: compiled-code cache: removed the oldest modules", "dir", r.cfg.CacheDir, "removed", removed, "bytes_left", left, "max_bytes", r.cfg.CacheMaxBytes)
	}
}

// Close releases every module and instance of the runtime.
func (r *Runtime) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.closeErr = errors.Join(r.rt.Close(ctx), r.fast.Close(ctx))
		if r.cache != nil {
			if err := r.cache.Close(ctx); r.closeErr == nil {
				r.closeErr = err
			}
		}
	})
	return r.closeErr
}

// SetQuietThrough suppresses the plugin log output (the log host function,
// stdout, stderr) of entries with an index up to index: a node calls it
// with the last index of its log when it starts (host.New), so that raft's
// replay of those entries does not log them again
// (TestPluginLogNotRepeatedOnReplay). Suppressed lines are counted
// (Counters.LogLinesSuppressed). 0 suppresses nothing.
func (r *Runtime) SetQuietThrough(index uint64) { r.quiet.Store(index) }

// OpenModules returns how many Modules Load returned that are not closed:
// what a leak check compares with the modules in use.
func (r *Runtime) OpenModules() int { return int(r.open.Load()) }

// Config returns the runtime's configuration.
func (r *Runtime) Config() Config { return r.cfg }

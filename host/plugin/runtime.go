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
)

// Config configures a Runtime.
type Config struct {
	// MemoryLimitPages caps each instance's memory, in 64 KiB pages.
	MemoryLimitPages uint32
	// CallTimeout bounds the wall-clock time of one guest call (a whole batch).
	CallTimeout time.Duration
	// CacheDir, if set, holds wazero's compiled code so that restarts do not
	// recompile modules.
	CacheDir string
	// Logger receives plugin log calls and guest stderr. Nil discards.
	Logger *slog.Logger
	// Trusted lists the sha256 (hex) of modules that run without wazero's
	// termination checks, which cost about half of the apply throughput of a
	// Go plugin. A trusted module's overrun of CallTimeout cannot be
	// interrupted, so trust only code shipped with raftkv (the embedded
	// default plugin); every other module keeps the checks.
	Trusted map[string]bool
}

// DefaultConfig returns the defaults: 512 pages (32 MiB), 5 s per call, no cache.
func DefaultConfig() Config {
	return Config{MemoryLimitPages: 512, CallTimeout: 5 * time.Second}
}

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
	r.wasiFns = make(map[string]bool)
	for name := range r.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		r.wasiFns[name] = true
	}
	return r, nil
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

// OpenModules returns how many Modules Load returned that are not closed:
// what a leak check compares with the modules in use.
func (r *Runtime) OpenModules() int { return int(r.open.Load()) }

// Config returns the runtime's configuration.
func (r *Runtime) Config() Config { return r.cfg }

package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
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
	rt        wazero.Runtime
	cache     wazero.CompilationCache
	log       *slog.Logger
	wasiFns   map[string]bool // WASI functions the host provides
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
	// stuck in a loop.
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(cfg.MemoryLimitPages).
		WithCloseOnContextDone(true)
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
	r := &Runtime{cfg: cfg, rt: wazero.NewRuntimeWithConfig(ctx, rc), cache: cache, log: log}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, fmt.Errorf("plugin: wasi: %w", err)
	}
	r.wasiFns = make(map[string]bool)
	for name := range r.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		r.wasiFns[name] = true
	}
	if err := r.instantiateHost(ctx); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	return r, nil
}

// Close releases every module and instance of the runtime.
func (r *Runtime) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.closeErr = r.rt.Close(ctx)
		if r.cache != nil {
			if err := r.cache.Close(ctx); r.closeErr == nil {
				r.closeErr = err
			}
		}
	})
	return r.closeErr
}

// Config returns the runtime's configuration.
func (r *Runtime) Config() Config { return r.cfg }

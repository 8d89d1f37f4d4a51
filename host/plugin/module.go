package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin/meter"
)

// Module is a compiled, validated plugin module. It is immutable and may be
// instantiated any number of times until it is closed. Each Load returns its
// own Module, with its own reference to the compiled code (wazero shares the
// code of identical modules and frees it with the last reference), so closing
// one Module never affects another, even of the same hash.
type Module struct {
	Hash       string // sha256 of the .wasm, hex
	Size       int    // bytes of the .wasm
	ABIVersion int
	HasMigrate bool
	// HasValidate: the module exports raftkv_validate (and does not report
	// "validate": false), so commands are checked before they are proposed.
	HasValidate bool
	Info        abi.Info // from raftkv_info, if the module exports it
	Wasm        []byte   // the module's bytes (needed for snapshots and replication)
	Name        string   // LoadOptions.Name: the plugin's name
	Limits      Limits   // LoadOptions.Limits

	compiled  wazero.CompiledModule
	rt        wazero.Runtime // the runtime it was compiled in
	trusted   bool           // compiled without termination checks (Config.Trusted)
	metered   bool           // instrumented with fuel (every module but trusted ones, Config.Trusted or Limits.Trusted)
	stacked   bool           // instrumented with the call-stack budget (every module but Config.Trusted ones)
	index     uint64         // LoadOptions.Index
	log       *slog.Logger   // tagged with the plugin's name
	counters  *counters
	limiter   logLimiter
	owner     *Runtime
	closeOnce sync.Once
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidModule, fmt.Sprintf(format, args...))
}

// HashOf returns the hex sha256 that identifies a module.
func HashOf(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// Load instruments, compiles and validates a module with its limits, then
// instantiates it once to run its initialiser and read its info. Every
// module but a trusted one (Config.Trusted, Limits.Trusted) is metered
// (package meter): what is compiled is the instrumented module, and its
// memory maximum is Limits.MemoryPages, trusted or not. A module trusted by
// its Limits keeps the call-stack budget and the termination checks. Every
// refusal wraps ErrInvalidModule and says what is wrong; it is
// deterministic (the same bytes are refused the same way on every node). A
// start section, initialiser or raftkv_info that runs past its wall-clock
// limit (Runtime.CallLimit) is not a refusal: that error wraps ErrTimeLimit (and not
// ErrInvalidModule), and a caller applying the log must stop (fail-stop). The
// caller closes the Module when it no longer needs it.
func (r *Runtime) Load(ctx context.Context, wasm []byte, opts LoadOptions) (*Module, error) {
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	if opts.Limits.MemoryPages > r.cfg.MemoryLimitPages {
		return nil, fmt.Errorf("%w: the plugin's memory_pages %d exceeds this node's MemoryLimitPages %d",
			ErrNodeLimit, opts.Limits.MemoryPages, r.cfg.MemoryLimitPages)
	}
	if len(wasm) > abi.MaxModuleSize {
		return nil, invalid("module is %d bytes, the limit is %d", len(wasm), abi.MaxModuleSize)
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, invalid("not a WebAssembly binary (missing the \\0asm header)")
	}
	hash := HashOf(wasm)
	rt := r.rt
	trusted := r.cfg.Trusted[hash]
	if trusted {
		rt = r.fast
	}
	mo := meter.Options{MemoryPages: opts.Limits.MemoryPages}
	stacked := !trusted && !r.unmetered
	metered := stacked && !opts.Limits.Trusted
	if stacked {
		mo.StackSlots = StackSlots
	}
	if metered {
		mo.Fuel, mo.InitialFuel = true, opts.Limits.LoadFuel
	}
	code, err := instrumented.instrument(hash, wasm, mo)
	if errors.Is(err, meter.ErrMalformed) {
		return nil, fmt.Errorf("%w: does not compile: %w", ErrInvalidModule, err)
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	compiled, err := rt.CompileModule(ctx, code)
	r.trimCache()
	if err != nil {
		return nil, fmt.Errorf("%w: does not compile: %w", ErrInvalidModule, err)
	}
	m := &Module{Hash: hash, Size: len(wasm), Wasm: wasm, Name: opts.Name, Limits: opts.Limits,
		compiled: compiled, rt: rt, owner: r, trusted: trusted, metered: metered, stacked: stacked, index: opts.Index,
		counters: new(counters), log: r.log.With("plugin", opts.Name, "hash", hash[:12])}
	r.open.Add(1)
	if err := r.validate(m); err != nil {
		m.Close(ctx)
		return nil, err
	}
	in, err := r.Instantiate(ctx, m)
	if err != nil {
		m.Close(ctx)
		return nil, loadErr("does not start", err)
	}
	defer in.Close(ctx)
	if _, ok := compiled.ExportedFunctions()[abi.ExportInfo]; ok {
		info, err := in.Info(ctx)
		// not_found means "no info" (ABI.md section 1): SDK versions whose
		// plugins had no sdk.Describer reported it.
		if errors.Is(err, &abi.Error{Code: abi.CodeNotFound}) {
			info, err = abi.Info{}, nil
		}
		if err != nil {
			m.Close(ctx)
			return nil, loadErr("raftkv_info failed", err)
		}
		if info.Migrate != nil && !*info.Migrate {
			m.HasMigrate = false // raftkv_migrate is exported but a no-op (ABI.md, raftkv_info)
		}
		if info.Validate != nil && !*info.Validate {
			m.HasValidate = false
		}
		info.Migrate, info.Validate = nil, nil
		m.Info = info
	}
	return m, nil
}

// loadErr wraps a failure of the module's own code at load time: a time limit
// or an abandoned call as it is, anything else (a trap, a bad info) as a
// refusal.
func loadErr(what string, err error) error {
	if errors.Is(err, ErrTimeLimit) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("plugin: loading module: %s: %w", what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidModule, what, err)
}

// Close releases this Module's reference to the compiled code: instances
// already running keep working, new ones cannot be made. It is idempotent.
func (m *Module) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		err = m.compiled.Close(ctx)
		m.owner.open.Add(-1)
	})
	return err
}

var (
	sigAlloc = sig{[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}}
	sigCall  = sig{[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil}
	sigVoid  = sig{nil, nil}
	sigInput = sig{nil, []api.ValueType{api.ValueTypeI64}}
)

type sig struct{ params, results []api.ValueType }

func (s sig) String() string {
	names := func(ts []api.ValueType) string {
		var parts []string
		for _, t := range ts {
			parts = append(parts, api.ValueTypeName(t))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return names(s.params) + " -> " + names(s.results)
}

func sigOf(d api.FunctionDefinition) sig { return sig{d.ParamTypes(), d.ResultTypes()} }

func (s sig) equal(o sig) bool {
	return slices.Equal(s.params, o.params) && slices.Equal(s.results, o.results)
}

func (r *Runtime) validate(m *Module) error {
	exports := m.compiled.ExportedFunctions()
	// The version marker.
	var markers []int
	for name := range exports {
		if v, ok := strings.CutPrefix(name, abi.ExportMarkerPrefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return invalid("export %q looks like an ABI marker but has no version number", name)
			}
			markers = append(markers, n)
		}
	}
	switch {
	case len(markers) == 0:
		return invalid("module does not export the ABI marker %q: it is not a raftkv plugin (see abi/ABI.md)", abi.ExportMarker)
	case len(markers) > 1:
		slices.Sort(markers)
		return invalid("module exports several ABI markers (versions %v); export exactly one", markers)
	case markers[0] != abi.Version:
		return invalid("module targets raftkv ABI v%d; this host supports v%d", markers[0], abi.Version)
	}
	m.ABIVersion = markers[0]
	_, start := exports["_start"]
	if _, init := exports[abi.ExportInitialize]; start && !init {
		return invalid("module is a WASI command (it exports _start, not _initialize): its runtime would never be initialised. Build it as a reactor: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared (Rust: crate-type cdylib; C: -mexec-model=reactor)")
	}
	if _, ok := m.compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		return invalid("module does not export its memory as %q", abi.ExportMemory)
	}
	want := []struct {
		name     string
		sig      sig
		required bool
	}{
		{abi.ExportMarker, sigVoid, true},
		{abi.ExportAlloc, sigAlloc, true},
		{abi.ExportApply, sigCall, true},
		{abi.ExportQuery, sigCall, true},
		{abi.ExportMigrate, sigCall, false},
		{abi.ExportInfo, sigVoid, false},
		{abi.ExportValidate, sigCall, false},
		{abi.ExportInputBuffer, sigInput, false},
		{abi.ExportInitialize, sigVoid, false},
	}
	for _, w := range want {
		d, ok := exports[w.name]
		if !ok {
			if w.required {
				return invalid("module does not export %s %s", w.name, w.sig)
			}
			continue
		}
		if got := sigOf(d); !got.equal(w.sig) {
			return invalid("export %s has signature %s, want %s", w.name, got, w.sig)
		}
	}
	_, m.HasMigrate = exports[abi.ExportMigrate]
	_, m.HasValidate = exports[abi.ExportValidate]
	// Imports: raftkv host functions and WASI only.
	for _, d := range m.compiled.ImportedFunctions() {
		mod, name, _ := d.Import()
		switch mod {
		case abi.ImportModule:
			h := hostFuncByName(name)
			if h == nil {
				return invalid("module imports unknown host function %s.%s", mod, name)
			}
			if got, w := sigOf(d), (sig{h.params, h.results}); !got.equal(w) {
				return invalid("import %s.%s has signature %s, want %s", mod, name, got, w)
			}
		case "wasi_snapshot_preview1":
			if !r.wasiFns[name] {
				return invalid("module imports unknown WASI function %s.%s", mod, name)
			}
		default:
			return invalid("module imports %s.%s; only %q and WASI imports are provided", mod, name, abi.ImportModule)
		}
	}
	for _, d := range m.compiled.ImportedMemories() {
		mod, name, _ := d.Import()
		return invalid("module imports memory %s.%s; plugins must define and export their own", mod, name)
	}
	return nil
}

func hostFuncByName(name string) *hostFuncDef {
	for i := range hostFuncs {
		if hostFuncs[i].name == name {
			return &hostFuncs[i]
		}
	}
	return nil
}

package plugin

import (
	"errors"
	"fmt"
)

// Limits are the deterministic limits of one plugin, replicated through the
// log: every node loads the plugin's module with the same Limits, so every
// node reaches a limit at the same instruction of the same entry, whatever
// its speed or its configuration. A Module is loaded with its Limits (see
// LoadOptions); changing a plugin's limits means loading its module again
// with the new ones.
//
// Fuel is counted in units of roughly one simple wasm instruction; host
// functions charge in proportion to the bytes they move (ABI.md, section 5).
// A trusted plugin (Trusted) and a module that Config.Trusted lists run
// unmetered: their fuel fields are not used, but their memory cap and
// quotas are.
type Limits struct {
	// ApplyFuel is the fuel of one log entry (command) in raftkv_apply. An
	// entry that exhausts it gets abi.CodeOutOfFuel and its writes are undone.
	ApplyFuel uint64 `json:"apply_fuel" msgpack:"apply_fuel"`
	// QueryFuel is the fuel of one query.
	QueryFuel uint64 `json:"query_fuel" msgpack:"query_fuel"`
	// LoadFuel is the fuel of each of _initialize, raftkv_info and
	// raftkv_migrate (each gets the whole budget).
	LoadFuel uint64 `json:"load_fuel" msgpack:"load_fuel"`
	// MemoryPages caps the instance's linear memory, in 64 KiB pages. It is
	// written into the module's memory section when the module is loaded,
	// so it is part of the code every node compiles.
	MemoryPages uint32 `json:"memory_pages" msgpack:"memory_pages"`
	// MaxWriteBytes bounds the bytes one entry writes (keys plus values of
	// its state_set calls, keys of its state_delete calls): the write that
	// would exceed it fails with abi.RcTooLarge.
	MaxWriteBytes uint64 `json:"max_write_bytes" msgpack:"max_write_bytes"`
	// MaxNamespaceKeys and MaxNamespaceBytes bound the plugin's namespace
	// (its number of keys; the sum of its keys' and values' lengths): a
	// state_set that would exceed either fails with abi.RcTooLarge.
	MaxNamespaceKeys  uint64 `json:"max_namespace_keys" msgpack:"max_namespace_keys"`
	MaxNamespaceBytes uint64 `json:"max_namespace_bytes" msgpack:"max_namespace_bytes"`
	// MaxLogBytes bounds the log output of one entry, query or load call
	// (the log host function, stdout and stderr together); the excess is
	// dropped and counted (Counters.LogBytesDropped).
	MaxLogBytes uint64 `json:"max_log_bytes" msgpack:"max_log_bytes"`
	// Trusted: the operator vouches for the module, which runs without fuel
	// (ApplyFuel, QueryFuel and LoadFuel are kept but not used). Its only
	// bound on time is then each node's wall-clock limit
	// (Config.CallTimeout): an entry that loops reaches it on every node, and
	// every node stops applying the log (fail-stop) until the plugin is
	// quarantined. It keeps wazero's termination checks, which that limit
	// needs (unlike a module Config.Trusted lists, whose loop nothing could
	// stop), the call-stack budget and everything else here. Being
	// replicated, it is the same on every node: a node that metered the
	// plugin while another did not would give another result for the same
	// entry.
	Trusted bool `json:"trusted" msgpack:"trusted,omitempty"`
}

// Bounds of the Limits fields that Validate enforces.
const (
	// MinFuel is the smallest fuel budget: enough for a trivial call.
	MinFuel = 10_000
	// MaxFuel is the largest fuel budget: 8 to 150 s on a 2-core machine at
	// load 14 (BenchmarkFuelRate), past the default CallTimeout: a metered
	// call's wall-clock limit grows to FuelTime of its budget
	// (Runtime.CallLimit), so no node needs a longer CallTimeout for it.
	MaxFuel = 5_000_000_000
	// MaxMemoryPages is wasm32's whole address space (4 GiB).
	MaxMemoryPages = 65536
)

// DefaultLimits returns the limits a plugin gets unless its deploy says
// otherwise: 20,000,000 fuel per entry and per query (a kv SET needs about
// 0.1% of it; an entry that uses all of it runs for tens of milliseconds),
// 200,000,000 for each load call (Go's runtime initialisation), 512 pages
// (32 MiB) of memory, 4 MiB of writes per entry, 10,000,000 keys and
// 1 GiB per namespace, 16 KiB of log output per entry.
func DefaultLimits() Limits {
	return Limits{
		ApplyFuel:         20_000_000,
		QueryFuel:         20_000_000,
		LoadFuel:          200_000_000,
		MemoryPages:       512,
		MaxWriteBytes:     4 << 20,
		MaxNamespaceKeys:  10_000_000,
		MaxNamespaceBytes: 1 << 30,
		MaxLogBytes:       16 << 10,
	}
}

// Validate reports a limit out of its range. Every error wraps ErrLimits.
func (l Limits) Validate() error {
	var errs []error
	fuel := func(name string, v uint64) {
		if v < MinFuel || v > MaxFuel {
			errs = append(errs, fmt.Errorf("%s %d out of range [%d, %d]", name, v, MinFuel, uint64(MaxFuel)))
		}
	}
	fuel("apply_fuel", l.ApplyFuel)
	fuel("query_fuel", l.QueryFuel)
	fuel("load_fuel", l.LoadFuel)
	if l.MemoryPages < 1 || l.MemoryPages > MaxMemoryPages {
		errs = append(errs, fmt.Errorf("memory_pages %d out of range [1, %d]", l.MemoryPages, MaxMemoryPages))
	}
	if l.MaxWriteBytes < 1 {
		errs = append(errs, errors.New("max_write_bytes must be positive"))
	}
	if l.MaxNamespaceKeys < 1 {
		errs = append(errs, errors.New("max_namespace_keys must be positive"))
	}
	if l.MaxNamespaceBytes < 1 {
		errs = append(errs, errors.New("max_namespace_bytes must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrLimits, err)
	}
	return nil
}

// LoadOptions are what Runtime.Load needs besides the module's bytes.
type LoadOptions struct {
	// Name is the plugin's name: it tags the plugin's log output in the
	// node log.
	Name string
	// Limits are the plugin's replicated limits.
	Limits Limits
	// Index is the log index of the entry that loads the module (0 outside
	// the log): output of its initialiser is suppressed while that entry is
	// replayed (see Runtime.SetQuietThrough).
	Index uint64
}

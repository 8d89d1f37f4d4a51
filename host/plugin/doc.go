// Package plugin runs raftkv state-machine plugins: WebAssembly modules that
// implement ABI v1 (see abi/ABI.md) executed by wazero.
//
// A Runtime loads each module with its Limits (LoadOptions): it instruments
// the module (package meter), compiles it once (with an optional on-disk
// compilation cache) and validates it: ABI marker and version, required
// exports and their signatures, and imports limited to the raftkv host
// functions and WASI. An Instance is one live copy of a module; it is not
// safe for concurrent use and is owned by one goroutine (the FSM goroutine
// for applies). A Pool hands out instances for concurrent read-only queries.
//
// # Design
//
// Plugins own no durable state. Host functions read and write a Store that the
// caller provides (host/state implements it); per-entry atomicity comes from the
// store's Begin/Commit/Rollback, driven by the guest's result call for each entry.
//
// Everything a plugin can do to a node is bounded by its Limits, which are
// replicated, so every node reaches a bound at the same point of the same
// entry:
//
//   - Fuel (Limits.ApplyFuel per entry, QueryFuel, LoadFuel). Every module
//     but a trusted one (Config.Trusted: the embedded kv; Limits.Trusted: a
//     plugin its operator vouches for) is metered; fuel is set at the start of each entry
//     (at each result call) and each call, and host functions charge it in
//     proportion to the bytes they move. Running out becomes the entry's
//     result, abi.CodeOutOfFuel.
//   - A call-stack budget (StackSlots), the same on every architecture.
//   - Memory (Limits.MemoryPages), written into the module's memory section.
//   - Quotas: bytes written per entry, keys and bytes per namespace (the
//     entry's result becomes abi.CodeTooLarge), log bytes per entry (the
//     excess is dropped and counted, see Counters).
//
// A trap (panic, unreachable, out-of-bounds access, out of memory, out of
// fuel, a bad pointer passed to a host function) is deterministic: it becomes
// the trapping entry's result, its writes are rolled back, and the instance
// is re-created from the compiled module to apply the rest of the batch.
//
// Determinism is enforced where the host can: WASI's clocks return the
// entry's time and its random source is seeded from the entry's index and
// term (see output.go); a trap's message holds only what the trapping entry
// printed. Guest memory that persists from one entry to the next cannot be
// prevented cheaply; the node detects it once it shows in the state: the
// leader's periodic digest check compares every node's state digests at
// the same log index (host/digestcheck.go).
//
// A call that exceeds the wall-clock limit (Runtime.CallLimit, per entry:
// Config.CallTimeout, or for a metered call the time its fuel budget takes
// at SlowFuelPerSecond if that is longer) is not deterministic, so it never
// becomes a result: Apply returns an error wrapping ErrTimeLimit and the
// caller must stop applying (fail-stop). With fuel, whatever its budget,
// only a trusted module or a host bug can get there. A module
// trusted by its Limits keeps wazero's termination checks, so its loop
// reaches the limit and stops the node (on every node: the limit is then
// the only bound on it); one that Config.Trusted lists has none, so
// nothing stops its loop.
//
// Guest output (the log host function, stdout, stderr) goes to the node log
// tagged with the plugin's name (LoadOptions.Name), rate-limited per module,
// and is suppressed for replayed entries (Runtime.SetQuietThrough).
package plugin

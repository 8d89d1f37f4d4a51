// Package plugin runs raftkv state-machine plugins: WebAssembly modules that
// implement ABI v1 (see abi/ABI.md) executed by wazero.
//
// A Runtime compiles each module once (with an optional on-disk compilation
// cache) and validates it: ABI marker and version, required exports and their
// signatures, and imports limited to the raftkv host functions and WASI. An
// Instance is one live copy of a module; it is not safe for concurrent use and
// is owned by one goroutine (the FSM goroutine for applies). A Pool hands out
// instances for concurrent read-only queries.
//
// # Design
//
// Plugins own no durable state. Host functions read and write a Store that the
// caller provides (host/state implements it); per-entry atomicity comes from the
// store's Begin/Commit/Rollback, driven by the guest's result call for each entry.
//
// A trap (panic, unreachable, out-of-bounds access, out of memory, a bad
// pointer passed to a host function) is deterministic: it becomes the trapping
// entry's result (abi.CodeTrap), its writes are rolled back, and the instance
// is re-created from the compiled module to apply the rest of the batch.
//
// A call that exceeds the wall-clock limit is not deterministic, so it never
// becomes a result: Apply returns an error wrapping ErrTimeLimit and the caller
// must stop applying (fail-stop). Memory is capped in pages, which is
// deterministic. WASI clocks and randomness are wazero's fixed fakes.
package plugin

// Package sdk is the Go SDK for raftkv plugins: state machines, compiled to
// WebAssembly, that raftkv replicates with Raft. The host orders commands
// and owns the data; a plugin is the logic that turns each committed command
// into reads and writes of its keys, and answers queries.
//
// # Writing a plugin
//
// Implement Plugin. Apply runs once per committed log entry, in log order, on
// every node; Query answers a read against the local state. Both reach the
// plugin's namespace of the host's ordered key-value store through State.
//
//	type Counter struct{}
//
//	func (Counter) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
//		v, _, _ := st.Get([]byte("n"))
//		n, _ := strconv.Atoi(string(v))
//		n++
//		return []byte(strconv.Itoa(n)), st.Set([]byte("n"), []byte(strconv.Itoa(n)))
//	}
//
//	func (Counter) Query(st sdk.State, q []byte) ([]byte, error) {
//		v, _, ok := st.Get([]byte("n"))
//		if !ok {
//			return nil, sdk.Errorf(abi.CodeNotFound, "no count yet")
//		}
//		return bytes.Clone(v), nil
//	}
//
// Register it from an init function of the plugin's main package; main
// stays empty (the module is a WASI reactor: the host runs init functions
// through _initialize and never calls main):
//
//	//go:build wasip1
//
//	package main
//
//	func init() { sdk.Register(Counter{}) }
//	func main() {}
//
// Rules, which the host relies on:
//   - Determinism. Every node must compute the same answer from the same state
//     and entry: use Entry.Now as the clock and Entry.Seed for randomness, keep
//     nothing in memory from one call to the next (batches differ between
//     nodes), and iterate maps in a fixed order.
//   - Atomicity is the host's job. If Apply returns an error, or panics, every
//     write of that entry is undone; a plugin never cleans up after itself.
//   - Errors. Return Errorf(code, ...) (an *abi.Error) to choose the result
//     code: abi.CodeBadRequest, CodeNotFound, CodeConflict, CodeTooLarge, or a
//     plugin code 64..255. Any other error is reported as abi.CodeInternal
//     with its text.
//   - Panics are not recovered. A panic (or any other trap: out-of-bounds
//     access, running out of memory) aborts the module; the host undoes the
//     entry's writes, records abi.CodeTrap with the panic message, and
//     continues with a fresh instance. It is not a way to report errors.
//   - Slices returned by State.Get and State.Scan, and Entry.Data, belong to
//     the SDK and are only valid until the next State call (Entry.Data: until
//     Apply returns). Copy what you keep.
//   - Memory is small: the host caps it (32 MiB by default, the same on every
//     node), and the SDK is sized to run in 16 MiB (see SoftMemoryLimit), for
//     the Go runtime (about 5), the batch (hosts keep it under MaxBatchBytes)
//     and the plugin. The SDK keeps its own buffers allocation-free; keep
//     Apply from allocating in the common case too (the garbage collector
//     only runs when the plugin allocates).
//
// Optional interfaces: Migrator (transform the state when this module
// replaces an earlier version of the same plugin), Describer (report a name
// and version), and Appender (build results in a buffer the SDK reuses, for
// plugins where every allocation counts). EntryOf gives the current entry
// inside Migrate.
//
// # Building
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildvcs=false -buildmode=c-shared -o counter.wasm ./counter
//
// -buildmode=c-shared makes a reactor (exports _initialize), which the host
// requires; -trimpath and -buildvcs=false make the build reproducible, so
// anyone can check that a module was built from given sources. The wasm build of this package provides the ABI's
// exports (raftkv_abi_v1, raftkv_alloc, raftkv_apply, raftkv_query,
// raftkv_migrate, raftkv_info) and imports the host functions; see abi/ABI.md
// for the contract, which a plugin in another language implements directly.
//
// # Testing
//
// The same code builds natively, so plugins are tested with go test, without
// wasm: NewMemState returns an in-memory State with the host's semantics —
// ordered keys with versions, per-entry atomicity (MemState.Apply), read-only
// queries (MemState.Query), migrations (MemState.Migrate), and answers that
// the next State call overwrites, as in wasm. See the example.
//
// # Performance
//
// The wasm apply loop decodes the batch in place (Entry.Data points into the
// input), makes one host call per state operation and one per result, and
// reuses its buffers, so a plugin that does not allocate runs without garbage
// collection. Go's wasm code is several times slower than native code,
// function calls and loops especially; keep the hot path short. Package mp
// reads and writes MsgPack without allocating.
package sdk

// Package sdk is the Go SDK for raftkv plugins: state machines, compiled to
// WebAssembly, that raftkv replicates with Raft. The host orders commands
// and owns the data; a plugin is the logic that turns each committed command
// into reads and writes of its keys, and answers queries.
//
// # Writing a plugin
//
// A command or query reaches a plugin as the bytes the client sent: over
// the HTTP API and the CLI always one MsgPack value (a JSON body is converted
// to the equivalent MsgPack: object → map, integer → int, string → str), and
// the plugin's result is rendered back from MsgPack to JSON. By convention a
// command is a map whose "op" field names the operation.
//
// The quickest way to write one is a Router: one typed handler per op, with
// request and response structs that the SDK decodes and encodes (Marshal,
// MsgPack; see codec.go for the rules), and typed state (Item, Map,
// Sequence; iterators over a Map or a key range; Map.List, a paged listing
// query's whole handler, or After and Collect for a listing of your own;
// Map.First, PopFirst and Count, which read only what they need;
// Map.MoveTo for a migration):
//
//	var (
//		counter = sdk.NewRouter(abi.Info{Name: "counter", Version: "1.0.0"})
//		count   = sdk.NewItem[int64]("n")
//	)
//
//	type add struct {
//		N int64 `msgpack:"n"`
//	}
//
//	func init() {
//		sdk.Command(counter, "add", func(st sdk.State, e sdk.Entry, req add) (int64, error) {
//			if req.N <= 0 {
//				return 0, sdk.BadRequest("n must be positive, not %d", req.N)
//			}
//			return count.Update(st, func(n int64, _ bool) (int64, error) { return n + req.N, nil })
//		})
//		sdk.Query(counter, "get", func(st sdk.State, _ struct{}) (int64, error) {
//			return count.Load(st)
//		})
//	}
//
// `raftkv plugin command counter '{"op":"add","n":5}'` answers 5, and the
// Router answers a malformed command, an unknown op or a query sent as a
// command with bad_request (400) for the author. A request type with a
// Check() error method has it run after decoding (Ensure writes its rules,
// one line each); the Router runs both before the leader proposes a
// command (Validator), so a command that fails them never reaches the log. An integer that does not fit its field (-5
// into a uint64) is a decoding error, never wrapped. Underneath, a plugin is any
// Plugin: Apply runs once per committed log entry, in log order, on every
// node; Query answers a read against the local state. Both reach the
// plugin's namespace of the host's ordered key-value store through State.
// A hand-written Plugin decodes its input with Decode and encodes results
// with Result: a result must be MsgPack (returning []byte(strconv.Itoa(5))
// is the byte '5', which the API renders as 53).
//
// Register it from an init function of the plugin's main package; main
// stays empty (the module is a WASI reactor: the host runs init functions
// through _initialize and never calls main):
//
//	//go:build wasip1
//
//	package main
//
//	func init() { sdk.Register(counter) }
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
// Logging, time and randomness inside a plugin:
//   - Log(level, msg) writes one line to the node's log at that level;
//     anything the plugin prints to stdout or stderr (fmt.Println, a panic's
//     message) is logged too, line by line, at info with source=stdout. Both
//     are tagged with the plugin's name, share the entry's log budget
//     (max_log_bytes, 16 KiB by default) and a rate limit, and are not
//     logged again when a restarted node replays the entry. Neither affects
//     state or results: they are for operators, not for clients.
//   - time.Now inside a plugin is not the node's clock: the host's WASI
//     clock returns the entry's time (plus a nanosecond per reading and what
//     the guest slept), the same on every node; 0 (1970) during a query and
//     at start-up. Use Entry.Now (or EntryOf(st).Now() in Migrate), which is
//     exactly the leader's timestamp.
//   - Randomness: use Entry.Seed, e.g. rand.New(rand.NewPCG(e.Seed(), 0)).
//     The WASI random source is seeded per entry, but Go's runtime seeds
//     math/rand's global generators from it once, when the instance starts,
//     so their numbers follow the instance's history rather than the entry:
//     do not use them.
//
// Optional interfaces: Migrator (transform the state when this module
// replaces an earlier version of the same plugin; Router.WithMigration
// gives a Router one; the wasm build exports
// raftkv_migrate for every plugin, and reports to the host through
// raftkv_info when the plugin is not a Migrator, so the cluster shows
// has_migrate false for it), Validator (refuse a malformed command before it
// reaches the log), Describer (report a name and version), and Appender (build results in a buffer the SDK reuses, for
// plugins where every allocation counts). EntryOf gives the current entry
// inside Migrate.
//
// # Depending on the SDK
//
// This package and package abi are their own Go modules
// (github.com/raftkv/raftkv/plugins/sdk and github.com/raftkv/raftkv/abi),
// whose only dependency is github.com/vmihailenco/msgpack/v5: a plugin's
// go.mod does not pull in raft, wazero or SSH. They are not published, so
// a plugin's go.mod requires both at v0.0.0 and replaces them with the
// directories of a raftkv checkout (see the README, "Writing and deploying
// a plugin"); `raftkv plugin init NAME --raftkv CHECKOUT` writes it.
//
// # Building
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildvcs=false -buildmode=c-shared -o counter.wasm ./counter
//
// -buildmode=c-shared makes a reactor (exports _initialize), which the host
// requires; -trimpath and -buildvcs=false make the build reproducible, so
// anyone can check that a module was built from given sources. The wasm build of this package provides the ABI's
// exports (raftkv_abi_v1, raftkv_alloc, raftkv_input_buffer, raftkv_apply,
// raftkv_query, raftkv_migrate, raftkv_validate, raftkv_info) and imports the
// host functions; see abi/ABI.md
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
// To test the built module, package github.com/raftkv/raftkv/plugintest
// runs a .wasm in-process on the host's real runtime (fuel, memory cap,
// traps) against an in-memory state, with auto-numbered entries, typed
// decoding of results and upgrades with their migration; `raftkv plugin run
// FILE.wasm` does the same from the command line, on JSON lines, optionally
// from a backup's state. `raftkv plugin init NAME` scaffolds a project with
// both kinds of test.
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

// Package kvstore is raftkv's default state machine: an ordered key-value
// store with per-key versions, compare-and-set and transactions. KV runs
// commands and queries against a State; package kvplugin puts it behind the
// SDK's sdk.Plugin, package plugins/kv builds that into the embedded kv.wasm,
// and the host can run the same code natively. The package also owns the
// protocol's client side (see "Client codec"): host/httpapi speaks to the
// plugin only through it. It imports no SDK, so the server links no guest
// code through it.
//
// # Protocol
//
// Commands (the data of log entries, run by Apply) and queries (run by Query
// against local state) are MsgPack maps with string field names. Byte fields
// (key, value, prefix, start, end) accept MsgPack str or bin; op names ignore
// ASCII case. Unknown fields are ignored, even repeated; a field of the
// protocol (op, key, value, version, ops, prefix, start, end, limit) given
// twice is refused, whether or not the op uses it. Results are MsgPack maps with fields in the order shown, byte
// strings as bin and integers in their shortest encoding.
//
// Commands:
//
//	{"op":"SET","key":k,"value":v}              → {"version": index}
//	{"op":"DELETE","key":k}                     → {"deleted": bool}
//	{"op":"DELETE","key":k,"version":n}         → {"deleted": bool}, if the key's version is n
//	{"op":"CAS","key":k,"value":v,"version":n}  → {"version": index}, if the key's version is n
//	{"op":"TXN","ops":[op, ...]}                → {"results":[result, ...]}
//	{"op":"GET","key":k}                        → {"value": bin, "version": n}
//
// The version of a key is the index of the entry that last wrote it; SET and
// CAS answer the new version, which is the entry's index. A DELETE ignores
// "value" (clients of the RaftKV seed send one).
//
// CAS and a DELETE with "version" compare the key's current version — 0 if
// the key is absent — with n; a difference is a conflict (abi.CodeConflict):
// "key exists" (n = 0, the key exists), "key not found" (n > 0, the key is
// absent) or "version mismatch: key has version V, expected N". So CAS with
// n = 0 creates a key only if it is absent.
//
// A TXN's ops are SET, DELETE and CAS commands, run in order; each sees the
// writes of those before it, with the TXN's index as their version. It is all
// or nothing: every op is checked before any runs, and the first op that
// fails makes the TXN fail with that op's code and the message "ops[i]: "
// followed by the op's own message (i counts from 0); the host then undoes
// every write of the entry. An empty ops array succeeds with no results.
//
// Queries:
//
//	{"op":"GET","key":k}  → {"value": bin, "version": n}
//	{"op":"LIST"[,"prefix":p][,"start":s][,"end":e][,"limit":n]}
//	                      → {"items":[{"key": bin, "value": bin, "version": n}, ...][,"next": bin]}
//
// GET of an absent key fails with abi.CodeNotFound "key not found". LIST
// returns, in key order, the keys k with k >= s, k < e (an absent or empty e
// is no bound) and k starting with p; limit defaults to DefaultListLimit and
// must be 1..MaxListLimit. It stops after limit items, or before the item that
// would take the encoded items over MaxListBytes (the first item always
// fits). "next" is present only when more keys remain: it is the first of
// them, to pass as "start" (with the same prefix, end and limit) to continue.
//
// # Errors
//
// A request is checked in this order, and the first problem is the answer
// (code abi.CodeBadRequest unless noted; the request changes nothing):
//
//  1. "malformed command: invalid msgpack" ("malformed query: ..." for
//     queries): the data is not exactly one well-formed MsgPack value.
//  2. "malformed command: expected a map": it is not a map.
//  3. "malformed command: field names must be strings": a field name is not
//     str or bin; `malformed command: field "N" given twice`: a field of the
//     protocol appears twice (as str or bin). Whichever comes first in the
//     map is the answer.
//  4. op: "missing op"; "op must be a string"; `unknown op "X"`; in a
//     command, `op "X" is only valid as a query` (LIST); in a query,
//     `op "X" is only valid as a command` (SET, DELETE, CAS, TXN). X is the
//     name as sent, cut to 64 bytes followed by "..." if longer, quoted as
//     Go's %q does.
//  5. TXN: "missing ops"; "ops must be an array"; then each op in order is
//     checked by these same rules (1 cannot happen), any failure prefixed
//     with "ops[i]: "; an op other than SET, DELETE and CAS gives
//     `ops[i]: op "X" is not allowed in a TXN (only SET, DELETE and CAS)`.
//  6. key (SET, DELETE, CAS, GET): "missing key"; "key must be str or bin";
//     "empty key"; abi.CodeTooLarge "key too large: N bytes (max 4096)".
//  7. value (SET, CAS): "missing value"; "value must be str or bin";
//     abi.CodeTooLarge "value too large: N bytes (max 1048576)".
//  8. version: CAS "missing version"; CAS and DELETE: "version must be a
//     non-negative integer" (any other op ignores "version").
//  9. LIST, in the order prefix, start, end: "prefix must be str or bin"
//     (start, end alike); abi.CodeTooLarge "prefix too large: N bytes (max
//     4096)"; then "limit must be an integer between 1 and 10000".
//
// The scripts in testdata/rules (run by TestRules) show every rule with the
// answers it gives, and are checked against this package and the model in
// internal/kvmodel.
//
// # Client codec
//
// Clients build requests and read results with this package, so that the
// protocol has one encoder and one decoder of each message, tested against
// each other:
//
//   - commands: AppendSetHead and AppendCASVersion (SET and CAS, with the
//     value appended by the caller, so that it can be read straight into the
//     command), AppendDelete, AppendTxn (around an encoded ops array), and
//     Command.AppendMsgpack for any command;
//   - queries: AppendGet, and Query.AppendMsgpack for any query;
//   - results: ParseSetResult, ParseDeleteResult, ParseGetResult and
//     ParseListResult (TxnResult and the result types decode with any
//     MsgPack decoder too);
//   - checks: ParseCommand and ParseQuery, the plugin's own decoders, to
//     refuse a bad request before it reaches the log.
//
// The encoders write the canonical encoding, the one the plugin's fast paths
// recognise (a SET from AppendSetHead takes the fastest); the result decoders
// read what the plugin writes and refuse anything else. Encoders and
// decoders run on every PUT and GET and do not allocate (ParseListResult
// allocates its Items); decoded byte strings alias their input.
//
// # Why the codec is hand-written
//
// Plugins written with the Go SDK usually decode their requests with its
// typed layer (sdk.Router, struct requests through sdk.Unmarshal). kv does
// not: it is the hot path of every write and read, and routing SET and GET
// through the typed layer made the node's BenchmarkFSMApply 14 to 32 times
// slower in wasm and a GET query 2.2 times (BENCHMARKS.md, "The kv plugin
// and the SDK's typed layer"; BenchmarkApplySetRouter measures the plugin's
// share natively). So it decodes with abi/mp, in one pass, without
// allocating.
package kvstore

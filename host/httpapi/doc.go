// Package httpapi is raftkv's HTTP API: the key-value endpoints of the
// default "kv" plugin, transactions, generic plugin commands and queries,
// plugin deployment, cluster membership, backup and restore, health checks,
// Prometheus metrics, and the RaftKV seed's /insert-val, /get-val and /join.
// docs/api.md is the reference for every endpoint; this package implements it.
//
// New builds an API over a host.Node. Handler serves the client API and
// MgmtHandler the management API (the seed's GET /join, the /v1/cluster
// endpoints, backup, restore, health and metrics); the cluster endpoints are
// on both, so a node can join through either address.
//
// # Requests
//
// Routes are Go 1.22 ServeMux patterns. A key is the rest of the path after
// /v1/kv/, percent-decoded, so "/v1/kv/a%2Fb" is the key "a/b" (a key of "."
// or ".." must be sent as %2E: the mux cleans dot segments). Every request
// runs under Config.RequestTimeout, except the backup and restore streams and
// plugin deploys.
// Bodies are bounded (Config.MaxBodyBytes; PUT /v1/kv/{key} by the value
// limit, plugin modules by abi.MaxModuleSize); a larger one is refused with
// 413 before it is read when Content-Length announces it. They are bounded in
// time too, with read deadlines on the connection: the whole body within
// Config.RequestTimeout, or, for deploys and restores, no pause longer than
// Config.StreamIdleTimeout; a late body is answered 408 and its connection
// closed. Body buffers grow as bytes arrive, never from Content-Length alone.
//
// Input is checked before anything is proposed: MsgPack with abi.Validate
// (which bounds every declared length, so a hostile body cannot make the
// decoder allocate), kv commands with kvstore.ParseCommand, keys, versions,
// limits and consistency levels here. Bad input is answered 4xx and never
// reaches the Raft log.
//
// # Errors
//
// Every error is JSON, {"error":{"code","message"[,"plugin_code"][,"leader"]}},
// with the status and code that one function, classify, derives from the
// host's sentinel errors, the plugin's result code or this package's own
// checks. A success is reported only for a success: an error after a
// streamed answer has started (a backup) aborts the connection. The answer
// to each kind of error is in testdata/errors (TestErrorMapping).
//
// # Hot path
//
// The key-value endpoints speak the kv plugin's protocol only through
// kvstore's client codec (kvstore.AppendSetHead, AppendGet, ParseGetResult,
// ...): this package encodes no kv command and decodes no kv result itself.
// PUT and GET of a key build the command in a pooled buffer (a PUT with a
// Content-Length reads the value straight into the command after its
// header), decode the plugin's result in place, without reflection or
// allocation, and write the answer without encoding/json. Metrics
// instruments are resolved per route and status once, not per request.
//
// # Metrics
//
// /metrics serves the registry of Config.Registry: the node's collectors
// (host.Node.Collectors), raftkv_http_requests_total{route,code} and
// raftkv_http_request_seconds{route} (route is the mux pattern, such as
// "GET /v1/kv/{key...}", or "unmatched"), and the Go and process collectors.
package httpapi

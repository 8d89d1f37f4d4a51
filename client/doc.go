// Package client is the Go client of a raftkv cluster: typed calls for the
// key-value store, plugins and the cluster over the HTTP API (docs/api.md),
// given the addresses of one or more nodes.
//
//	c, err := client.New(client.Config{Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:8080"}})
//	version, err := c.Put(ctx, "greeting", []byte("hello"))
//	item, err := c.Get(ctx, "greeting", client.WithConsistency(client.Linearizable))
//
// Any node answers any request (followers forward to the leader), so a
// client works with a single endpoint. With several it finds the leader and
// sends it the requests that need it (writes, leader and linearizable
// reads), and moves to another node when one does not answer: it learns
// which endpoint is which node from GET /v1/cluster, and the leader from
// that answer and from the X-Raftkv-Leader header of not_leader and
// no_leader errors.
//
// # Retries
//
// Every call takes a context, which bounds it with all its retries.
// A call is retried, on another node when it can, only where that is safe:
//
//   - reads (Get, List, Query, Cluster, ...): after any failure that may
//     pass — the node did not answer, 503 (no leader yet, not the leader,
//     stopped), 504, 429;
//   - writes that applied twice have the effect of once (Deploy of the same
//     module, Restore of the same backup, Join, Trust): as reads;
//   - other writes: when the write certainly was not applied — the connection
//     could not be made, or the answer was 503 (refused before it was
//     proposed); after an ambiguous failure (504 timeout or unknown_outcome,
//     or a connection lost after the request was sent) only when the write
//     is a plugin command (a KV write, a transaction, Command) carrying an
//     idempotency key and the cluster deduplicates them (it says
//     so in the X-Raftkv-Idempotency header of its answers): then the
//     retry returns the first attempt's result instead of applying the
//     write twice. Every plugin command carries a fresh key unless
//     Config.NoIdempotencyKeys is set; WithIdempotencyKey sets one;
//   - removals (RemoveMember, RemovePlugin) are retried as idempotent
//     writes, and a not_found answer to a retry after an ambiguous failure
//     means the first attempt removed it: the call succeeds.
//
// Otherwise the error is returned as is: an ambiguous write's error matches
// ErrUnknownOutcome, and the caller decides (read before writing again).
//
// # Errors
//
// An error answer of the API is an *Error with the HTTP status and the
// API's code ("not_found", "conflict", ...), the message and the plugin's
// result code when it has one; errors.Is matches it against this package's
// sentinels (ErrNotFound, ErrConflict, ...).
package client

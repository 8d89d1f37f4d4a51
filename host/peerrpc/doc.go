// Package peerrpc is the forwarding RPC between raftkv nodes, the SSH
// "rpc" channel (host/transport carries it: a method name and a body in,
// an answer out): its methods, who may call each, the bodies and their
// codecs, the error codes that keep an error's identity across the wire,
// and the batching of forwarded writes. Package host serves it and calls
// it (host/forward.go); this package does not know a Node, and imports
// nothing of host but the trust list, the plugin limits and the log
// store's error (TestImports in host/transport/imports_test.go).
//
// # Why a follower calls the leader
//
// A client may send any request to any node. A write, a read that is not
// stale, and every administrative change must run on the leader: a
// follower forwards them to the node Raft names as leader. The leader
// answers what it would have answered its own client, and never forwards
// again (a request that reaches a node that no longer leads is answered
// ErrNotLeader), so there are no forwarding loops. A few methods are
// answered by any node, about itself (AnyNode).
//
// # Methods and who may call each
//
// A caller is known by the node ID it proved in the SSH handshake, and by
// the Role that ID has in the answering node's Raft configuration. A key in
// the trust list is not a member: it may call nothing but a ping and a join
// of its own ID. Members may forward client reads and writes. Administrative methods
// change who is in the cluster or what code it runs: they need a voter, or
// the cluster token carried inside the request (the forwarding node's HTTP
// API has checked it from the client). Authorize decides.
//
//	method         answered by  access                 body              answer (Response.Data)
//	ping           any node     any trusted key        PingBody          PingAnswer
//	status         any node     members                StatusBody        host.NodeStatus
//	digest         any node     members (the leader*)  DigestBody        DigestAnswer
//	voters         any node     members                VotersBody        VotersAnswer
//	apply          leader       members                ApplyBody         ApplyResponse
//	query          leader**     members                QueryBody         the plugin's Code and Data
//	plugin-list    leader       members                PluginListBody    PluginListAnswer
//	join           leader       admin, or self         JoinBody          host.JoinResponse
//	remove         leader       admin, or self member  RemoveBody        empty
//	trust          leader       admin                  TrustBody         the replicated trust lines
//	deploy         leader       admin                  DeployBody        fsm.PluginInfo
//	remove-plugin  leader       admin                  RemovePluginBody  empty
//	set-limits     leader       admin                  SetLimitsBody     fsm.PluginInfo
//	quarantine     leader       admin                  QuarantineBody    empty
//	addresses      leader       admin, or self member  AddressesBody     empty
//
// "admin" is a voter, or any member whose request carries the cluster
// token; "self" is a request about the caller's own node ID (Method.Self).
// (*) a digest is answered only if it comes from the answering node's
// leader (host/digestcheck.go). (**) a stale query is answered by any
// node. The method names are the wire's: never rename one.
//
// # Bodies
//
// Every method has its own body type (Body), and the body a node receives
// is decoded by Decode into the type its method names, by a decoder that
// refuses what that type cannot hold: a body that is not one MsgPack map,
// a key the type does not have, a value of the wrong type, bytes after the
// map, and values the method cannot take (an empty node ID, an unknown
// consistency, an empty batch or one of more than MaxBatch commands, an
// invalid plugin name). Such a request is answered ErrInvalid (fsm's),
// naming the method and the fault, and nothing runs. A node that is not a
// member is refused before its body is decoded (host's serveForwarded).
//
// The forwarded write and read (ApplyBody, QueryBody) and every answer's
// envelope (Response, ApplyResponse) are encoded by hand (codec.go; see
// RATIONALE.md, "Hand-written codecs on the hot paths"); they write the
// bytes msgpack/v5's reflection codec writes for the same struct, which
// TestRPCCodecMatchesReflection checks both ways. The administrative
// bodies go through the reflection codec, after abi.Validate. A decoded
// body's byte fields alias the message (a fresh buffer per call).
//
// Every answer is a Response: an error (its Code and message), or a result
// (Code and Data: a query's are the plugin's answer; for the other methods
// Data is the MsgPack of the answer type above). An apply's Data is an
// ApplyResponse: one Response per command, in order, each with its own
// result or error. Unknown keys of a Response are skipped: an answer comes
// from the leader, and a newer leader may add some.
//
// The formats are not those of raftkv before typed bodies (one request
// struct shared by every method): a cluster is upgraded whole, not node by
// node, across that change.
//
// # Error codes
//
// An error that crosses the wire keeps its identity: the answering node
// sends its Code (EncodeErr: the first of the coded errors it matches,
// with errors.Is) and its message, and the caller rebuilds an error
// (DecodeErr) whose message is the sender's and which matches the same
// error with errors.Is. So a follower answers its client what the leader
// would have: ErrNotLeader, ErrTimeout, ErrUnknownOutcome, a degraded
// leader's refusal, a plugin's ErrQuarantined, and so on. The codes are
// fixed numbers: a node of another version decodes the same code to the
// same error. CodeOther is an error without an identity; its message is
// all there is. The errors this package defines (ErrNotLeader, ErrClosed,
// …) are re-exported by package host under the same names, and documented
// there for a Node's callers.
//
// # Batching forwarded writes
//
// A follower sends its clients' writes to the leader in apply requests of
// up to MaxBatch commands, at most MaxInFlight at a time (Batcher): writes
// that arrive together leave together, and a write that arrives while
// fewer than MaxInFlight requests are in flight leaves at once. The leader
// proposes a request's commands together, so Raft appends them as one
// batch. Each command keeps its own idempotency key and gets its own
// result or error; a write whose caller gives up before it was sent is
// answered ErrTimeout and never sent, one given up after it was sent is
// answered ErrTimeout saying it may still be applied. batch.go says how
// the senders take the queue and what that is worth (BENCHMARKS.md).
package peerrpc

// Package trust is raftkv's trust list: which SSH public keys a node
// accepts, and which node ID each of them proves. Nodes talk to each other
// only over SSH with mutual public-key authentication (host/transport), so
// this list is the whole of node identity: a peer is node N because it
// proved, in the SSH handshake, that it holds a key the list binds to N.
//
// # A key binds to one node ID
//
// Every node has an ed25519 key in its data directory
// (transport.LoadOrCreateKey). A trust line binds a public key to a node
// ID: an authorized_keys line whose comment field is the ID, "ssh-ed25519
// AAAA… n1" (TrustLine, ParseTrustLine). authorized_keys options (from=,
// restrict, …) are refused rather than ignored, since nothing would enforce
// them. A node ID (ValidateNodeID) is also the SSH user name a node logs in
// with and its Raft server ID.
//
// A Trust holds the bindings. A node may have several keys; a key has at
// most one node. A key is trusted for node N when a source binds it to N,
// no source binds it to another ID, and N is not revoked; a key only the
// authorized_keys file binds to N is not, once the replicated list names
// keys for N (so a removed node's old key left in a file does not come back
// when N is trusted again). A key bound to
// two IDs is trusted for neither: listing a member's key under another
// name must not let its holder choose which node it is. Within one source
// such a binding is refused (ErrKeyConflict: ParseAuthorizedKeys for the
// file, Set and Add for the replicated list); across the two sources below
// it can only be detected, and then the key is trusted for neither.
//
// # Two sources
//
// The authorized_keys file (AuthorizedKeysFile in the data directory,
// Trust.LoadAuthorizedKeys) is the operator's, per node and never
// replicated: it is how nodes that share no log yet can accept each other.
// The node reads it when it starts (host/node.go); a missing file is an
// empty one. The replicated list (Trust.Set, Add,
// Remove) comes from the Raft log, so every node holds the same list at the
// same log index. Trust.Entries returns the replicated entries only: they
// are what a join answer hands a new node, what a snapshot carries and what
// trust.json caches.
//
// # Revocation
//
// Removing a node's replicated entries (Trust.Remove) is not enough once
// it has been removed from the cluster: its key may still be in some
// node's authorized_keys file. Trust.Revoke drops its replicated entries
// and refuses its keys from any source, until the replicated list names it
// again (Set or Add lifts the revocation: trusting a node again through the
// log is the way back). The revoked IDs are part of the replicated state
// (Trust.Revoked; snapshots and trust.json carry them).
//
// # Who changes the list
//
// The replicated list changes through log entries, applied by the FSM:
// KindTrustAdd binds a key (Trust.Add) and KindTrustRemove revokes a node
// (Remove, then Revoke), both in FSM.trustChange (internal/fsm/fsm.go, entry
// kinds in internal/fsm/envelope.go); restoring a snapshot sets the list it
// carries (internal/fsm/snapshot.go). Those entries are proposed by the node's membership
// operations (host/membership.go): Node.Trust, and Node.Join with a public
// key, add one; Node.Remove revokes the member once its removal has
// committed; a leader adds its own key when it takes office
// (ensureSelfTrusted, host/node.go). The leader checks each addition
// first (host/joinsafety.go: a member keeps its key).
//
// Two paths add entries outside the log, on one node, because the node
// cannot follow the log without them; the log's list replaces them once
// the node has caught up. A joining node accepts the trust lines the
// member it joined through answered (Node.AcceptTrust), so that it accepts
// the leader that will add it. A voter that missed joins while it was down
// learns the new voters' keys from a voter of its own configuration
// (host/vouch.go).
//
// # trust.json and the trust floor
//
// A restarted node must accept its peers before Raft can replay the log
// its list comes from. So after every change the node writes the list it
// applied to its data directory (CacheFile, "trust.json": WriteCache) and
// reads it back at start (ReadCache, before Raft starts). The write goes
// through a temporary file that is synced, renamed over trust.json, and the
// directory synced, so a crash leaves the previous file or the new one,
// whole; a temporary file a crash left is removed at the next start. A
// failed write is logged, not fatal: the node runs on the list in memory
// and a restart catches up from the log.
//
// The cache records the log index its list is as of (Cache.Index). At
// restart Raft restores the node's latest snapshot, which may be older than
// that list, and going back to the snapshot's list would be a trap: the node
// replays its log only once a leader tells it the commit index, and a member
// that joined after the snapshot may be the only leader it can have, one
// whose key the snapshot does not hold. So the FSM keeps the cached list
// over a snapshot older than its index: the trust floor (internal/fsm's
// Config.TrustFloor, set from Cache.Index; the restore in
// internal/fsm/snapshot.go; TestRestartFromOlderSnapshotHearsNewMember). The
// trust entries between the snapshot and the floor are then applied again;
// each binds or drops one node's keys, so applying one again on its own
// result changes nothing. trust.json also tells a data directory whose Raft
// log was moved aside from a new one: one whose cache names other nodes
// (CachedPeers) belongs to a former member, which raftkv serve does not
// bootstrap (host.FormerMember).
//
// # Where the list is enforced
//
// This package decides nothing about connections or requests: it answers
// whom a key belongs to (Trust.NodeFor, Lookup), whether a node has a
// trusted key (Trust.Trusts), and when the list changes (Trust.Changed).
// The checks that use it:
//
//   - host/transport, in the SSH handshake: a server accepts a client only
//     if the user name is a node ID and the key the client proved is bound
//     to that ID; a dialler accepts a server only if its host key is bound
//     to the ID it expects at that address. When the list changes, live
//     connections whose peer key is no longer bound to the peer's ID are
//     closed.
//   - host/raftauth: a Raft request's header must name the node the peer
//     proved over SSH, and host/peerauth.go (authorizeRaft) requires that
//     node to be a voter of the configuration; forwarded RPCs follow the
//     per-method policy of host/peerrpc.
//   - host/joinsafety.go and Node.Join: no node joins unless a key is
//     trusted for it (Trusts), and the leader proves over SSH that the node
//     at the joining address holds that key.
//
// This package imports nothing else of raftkv (host/transport's
// imports_test.go holds it to that): the transport and the node import it.
package trust

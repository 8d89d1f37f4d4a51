// Package state is the host-owned durable state of raftkv plugins: an ordered
// byte-key -> byte-value store per plugin namespace, each key carrying a
// version (the Raft log index of its last write). Plugins reach it through
// the state_* host functions of the ABI (abi/ABI.md, sections 2 and 3).
//
// # Who calls what
//
// One writer, the FSM goroutine, owns the write side: it wraps every applied
// batch in Store.Update and, inside it, obtains a *Namespace and calls Get,
// Set, Delete and Scan. Each command (Raft entry) is bracketed by Begin and
// Commit, or Rollback when the plugin reports an error, traps or returns
// without a result: Rollback restores every value and version the command
// touched, in reverse order. Reads inside a command see its own writes.
//
// Any goroutine may call Store.View, which returns an immutable, consistent
// snapshot of every namespace as of the end of the last Update; queries,
// digests and snapshot persistence (View.WriteTo) read from views while the
// FSM keeps writing. Store.Restore replaces everything from a WriteTo stream
// after verifying all of it.
//
// # Design notes
//
// Copy-on-write B-tree views. Each namespace is a github.com/google/btree
// BTreeG. BTreeG.Clone is O(1): it marks the existing nodes shared, and the
// first later write to a shared node copies it (one node per tree level). A
// View therefore costs O(number of namespaces), never O(keys), so it can be
// taken on every batch, and persisting a snapshot never blocks the FSM. Views
// are cached until the next Update (and a namespace that was not written
// keeps its previous clone), so many readers between two batches share one
// clone and cause no extra copying. The price is paid by writes after a
// View: each write to a leaf not yet copied since that View copies it (about
// 2 KB at degree 32), which is why a View is not taken per command.
//
// Undo log for command atomicity. A command's writes are applied to the tree
// at once (so later reads and scans see them with no overlay to merge), and
// Begin/Commit/Rollback only record what each Set or Delete replaced: one
// 40-byte entry holding the previous item by value (items are immutable, so
// no bytes are copied). Commit just truncates the log, reusing its storage.
// A clone per command would instead mark the whole tree shared at every
// command, making the next writes copy their path of nodes; the undo log
// costs nothing when commands succeed, which is the common case.
//
// Items by value, key prefix inline. Tree nodes hold 16-byte items by value:
// the key's length and first 6 bytes in one word, and a pointer to one
// allocation holding the key, the value's length, the version and the value.
// Set makes exactly one allocation. Most comparisons are decided by the
// prefix word alone; only ties dereference the key bytes, which in a large
// store are a cache miss each (a lookup in a 1M-key tree makes ~40
// comparisons). Keys and values handed out by Get and Scan alias these
// immutable bytes: callers must not modify them, and may keep them.
//
// Memory per key. For 16-byte keys and 100-byte values the allocation is
// 128 bytes (exactly a size class), plus the 16-byte item in a node that is
// about 70% full after random inserts (about 23 bytes), plus node overhead:
// about 152 bytes per key measured (BenchmarkGet, heapB/key). Restore
// reads keys in ascending order, which would leave every node half full;
// it inserts the even records first and the odd ones after, which fills the
// nodes instead: about 145 bytes per key (BenchmarkRestore, heapB/key), 1.25
// times the 116 bytes of key and value (degree 64). (With 32-byte items holding both
// lengths and the version, and key and value alone in a 128-byte class, the
// same figures were 177 and 162.)
//
// # Snapshot format
//
// See View.WriteTo and Store.Restore: a magic and format version, then per
// namespace its name, record count and records in key order, then a
// CRC-32C of everything before it. The encoding is canonical (the same
// contents always give the same bytes). Restore checks every length against
// abi.MaxKeySize, abi.MaxValueSize and MaxNameSize before allocating,
// requires strictly ascending names and keys, and verifies the checksum
// before touching the store.
package state

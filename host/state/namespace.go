package state

import (
	"fmt"

	"github.com/google/btree"

	"github.com/raftkv/raftkv/abi"
)

// Namespace is the write side of one namespace: an ordered map from byte keys
// to byte values, each with a version. Only the writer (FSM) goroutine uses it,
// and its writes happen inside Store.Update.
type Namespace struct {
	name string
	tree *btree.BTreeG[item]
	view *NamespaceView // clone cached by Store.View; nil once written since
	size int64          // sum of the keys' and values' lengths

	recording bool   // between Begin and Commit/Rollback
	undo      []undo // reverse of every Set/Delete since Begin
}

// undo reverts one write: restore puts it back (the write replaced or deleted
// it), otherwise it is deleted (the write inserted it).
type undo struct {
	it      item
	restore bool
}

// maxKeptUndo is the largest undo log capacity (entries) kept between
// commands; a bigger one (from a huge command) is released.
const maxKeptUndo = 1 << 16

// Name returns the namespace's name.
func (n *Namespace) Name() string { return n.name }

// Get returns the value and version stored under key. The value aliases the
// store's immutable copy: the caller must not modify it, and may keep it.
func (n *Namespace) Get(key []byte) (value []byte, version uint64, ok bool) {
	it, ok := n.tree.Get(probe(key))
	if !ok {
		return nil, 0, false
	}
	return it.value(), it.version(), true
}

// Set stores copies of key and value with the given version (the log index of
// the write). It panics if key is empty or longer than abi.MaxKeySize, or
// value longer than abi.MaxValueSize: the host refuses those (RcBadArg,
// RcTooLarge) before calling Set, and a snapshot could not hold them.
func (n *Namespace) Set(key, value []byte, version uint64) {
	if len(key) == 0 || len(key) > abi.MaxKeySize || len(value) > abi.MaxValueSize {
		panic(fmt.Sprintf("state: Set: key (%d bytes) or value (%d bytes) outside the limits (1..%d, %d)",
			len(key), len(value), abi.MaxKeySize, abi.MaxValueSize))
	}
	it := newItem(key, value, version)
	old, replaced := n.tree.ReplaceOrInsert(it)
	n.view = nil
	n.size += int64(it.size())
	if replaced {
		n.size -= int64(old.size())
	}
	if n.recording {
		if replaced {
			n.undo = append(n.undo, undo{it: old, restore: true})
		} else {
			n.undo = append(n.undo, undo{it: it})
		}
	}
}

// Delete removes key and reports whether it existed.
func (n *Namespace) Delete(key []byte) bool {
	old, ok := n.tree.Delete(probe(key))
	if !ok {
		return false
	}
	n.view = nil
	n.size -= int64(old.size())
	if n.recording {
		n.undo = append(n.undo, undo{it: old, restore: true})
	}
	return true
}

// Scan visits the keys k with start <= k < end in ascending byte order (end
// nil or empty: no upper bound), at most limit of them (limit <= 0: no limit),
// and stops early when fn returns false. key and value alias the store's
// immutable copies: fn must not modify them, and may keep them. fn must not
// write to the namespace.
func (n *Namespace) Scan(start, end []byte, limit int, fn func(key, value []byte, version uint64) bool) {
	scan(n.tree, start, end, limit, fn)
}

// Len returns the number of keys.
func (n *Namespace) Len() int { return n.tree.Len() }

// Bytes returns the sum of the lengths of the keys and values.
func (n *Namespace) Bytes() int64 { return n.size }

// Begin starts a command: from now on every Set and Delete is recorded so that
// Rollback can undo it. Reads see the command's own writes immediately. It
// panics if a command is already open (a missing Commit or Rollback would
// silently merge two commands).
func (n *Namespace) Begin() {
	if n.recording {
		panic("state: Begin: a command is already open on namespace " + n.name)
	}
	n.recording = true
}

// Commit ends the command, keeping its writes. A no-op without Begin.
func (n *Namespace) Commit() {
	n.recording = false
	n.clearUndo()
}

// Rollback ends the command, undoing every Set and Delete since Begin in
// reverse order: old values and old versions come back, inserted keys go away.
// A no-op without Begin.
func (n *Namespace) Rollback() {
	for i := len(n.undo) - 1; i >= 0; i-- {
		u := n.undo[i]
		if u.restore {
			n.size += int64(u.it.size())
			if old, ok := n.tree.ReplaceOrInsert(u.it); ok {
				n.size -= int64(old.size())
			}
		} else if old, ok := n.tree.Delete(u.it); ok {
			n.size -= int64(old.size())
		}
	}
	if len(n.undo) > 0 {
		n.view = nil
	}
	n.recording = false
	n.clearUndo()
}

// InCommand reports whether a command is open (Begin without Commit or
// Rollback yet).
func (n *Namespace) InCommand() bool { return n.recording }

// clearUndo empties the undo log, keeping its storage for the next command
// unless it grew huge. Entries are zeroed so that replaced values can be
// collected.
func (n *Namespace) clearUndo() {
	if cap(n.undo) > maxKeptUndo {
		n.undo = nil
		return
	}
	clear(n.undo)
	n.undo = n.undo[:0]
}

// reset replaces the namespace's contents with tree and forgets any open
// command.
func (n *Namespace) reset(tree *btree.BTreeG[item]) {
	n.tree = tree
	n.size = 0
	tree.Ascend(func(it item) bool {
		n.size += int64(it.size())
		return true
	})
	n.view = nil
	n.recording = false
	n.clearUndo()
}

// scan implements Scan for the write side and for views.
func scan(t *btree.BTreeG[item], start, end []byte, limit int, fn func(key, value []byte, version uint64) bool) {
	if len(end) > 0 && string(start) >= string(end) {
		return
	}
	count := 0
	iter := func(it item) bool {
		if !fn(it.keyBytes(), it.value(), it.version()) {
			return false
		}
		count++
		return limit <= 0 || count < limit
	}
	switch {
	case len(end) > 0:
		t.AscendRange(probe(start), probe(end), iter)
	case len(start) > 0:
		t.AscendGreaterOrEqual(probe(start), iter)
	default:
		t.Ascend(iter)
	}
}

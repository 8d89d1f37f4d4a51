package state

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Errors returned by this package. Every error message starts with "state: ".
// Restore failures caused by the stream's content wrap ErrCorrupt; test with
// errors.Is.
var (
	// ErrCorrupt: a snapshot stream is truncated, has the wrong magic or
	// format version, fails its checksum, or is structurally invalid (an
	// absurd length, keys or namespaces out of order, a bad name).
	ErrCorrupt = errors.New("state: corrupt snapshot")
	// ErrInvalidName: a namespace name is empty or longer than MaxNameSize.
	ErrInvalidName = errors.New("state: invalid namespace name")
)

// MaxNameSize is the longest namespace name, in bytes.
const MaxNameSize = 255

// ValidName reports whether name can be used as a namespace name: 1 to
// MaxNameSize bytes (any bytes). The error wraps ErrInvalidName.
func ValidName(name string) error {
	if len(name) == 0 || len(name) > MaxNameSize {
		return fmt.Errorf("%w: length %d, want 1..%d", ErrInvalidName, len(name), MaxNameSize)
	}
	return nil
}

// Store holds every namespace. Writes come from a single goroutine (the FSM)
// inside Update; any goroutine may call View.
type Store struct {
	mu       sync.Mutex            // held by Update, Restore, and View when it must clone
	spaces   map[string]*Namespace // written only by the writer goroutine, under mu
	updating bool                  // inside Update; read and written only by the writer goroutine
	view     atomic.Pointer[View]  // cached view; nil after a change until the next View
}

// New returns an empty store.
func New() *Store {
	return &Store{spaces: make(map[string]*Namespace)}
}

// Namespace returns the namespace called name, creating it (empty) if it does
// not exist. Writer goroutine only; it may be called inside or outside Update.
// It panics if name is not valid (see ValidName): names come from plugin
// deployment, which validates them first.
func (s *Store) Namespace(name string) *Namespace {
	if n, ok := s.spaces[name]; ok {
		return n
	}
	if err := ValidName(name); err != nil {
		panic(err)
	}
	n := &Namespace{name: name, tree: newTree()}
	s.locked(func() { s.spaces[name] = n })
	return n
}

// Lookup returns the namespace called name if it exists. Writer goroutine only.
func (s *Store) Lookup(name string) (*Namespace, bool) {
	n, ok := s.spaces[name]
	return n, ok
}

// Drop deletes the namespace called name and all its keys (a no-op if it does
// not exist). Views taken before keep seeing it. A *Namespace obtained earlier
// is detached: it is emptied, and writes to it are not part of the store.
// Writer goroutine only; inside or outside Update.
func (s *Store) Drop(name string) {
	n, ok := s.spaces[name]
	if !ok {
		return
	}
	s.locked(func() { delete(s.spaces, name) })
	n.reset(newTree())
}

// Names returns the namespace names in ascending order. Writer goroutine only
// (readers use View().Names()).
func (s *Store) Names() []string {
	names := make([]string, 0, len(s.spaces))
	for name := range s.spaces {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Update runs fn while holding the store's write lock. The FSM wraps each
// applied batch in Update; all writes happen inside Update (on the writer
// goroutine). Readers calling View during fn get the view of the previous
// Update without waiting, unless none is cached yet. Update must not be
// nested, and fn must not call Restore.
func (s *Store) Update(fn func()) {
	s.mu.Lock()
	s.updating = true
	defer func() {
		s.updating = false
		s.view.Store(nil)
		s.mu.Unlock()
	}()
	fn()
}

// locked runs fn under the write lock, taking it unless the writer is already
// inside Update, and invalidates the cached view.
func (s *Store) locked(fn func()) {
	if s.updating {
		fn() // Update holds the lock and invalidates the view when it ends.
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
	s.view.Store(nil)
}

// View returns an immutable, consistent view of every namespace as of the end
// of the last Update (or Namespace, Drop, Restore outside Update). It costs
// O(number of namespaces): each namespace's tree is cloned lazily, and only if
// it was written since the previous View. The view is cached until the next
// change, so many readers between two batches share one clone. Safe to call
// from any goroutine, except from inside an Update's fn.
func (s *Store) View() *View {
	if v := s.view.Load(); v != nil {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.view.Load(); v != nil {
		return v
	}
	v := &View{
		names:  make([]string, 0, len(s.spaces)),
		spaces: make(map[string]*NamespaceView, len(s.spaces)),
	}
	for name, n := range s.spaces {
		if n.view == nil {
			n.view = &NamespaceView{name: name, tree: n.tree.Clone(), size: n.size}
		}
		v.names = append(v.names, name)
		v.spaces[name] = n.view
	}
	sort.Strings(v.names)
	s.view.Store(v)
	return v
}

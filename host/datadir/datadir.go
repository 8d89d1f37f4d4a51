// Package datadir guards a node's data directory: an exclusive lock, so
// that two processes never open one log; the node ID the directory was
// created for, so that it is never started as another node; and its modes,
// so that only its owner can read the private key, the trust list and the
// data (FixModes).
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Names in the data directory.
const (
	LockFile   = "LOCK"    // held (flock) by the process that uses the directory; holds its pid
	NodeIDFile = "node-id" // the ID the directory was created for
)

// Errors.
var (
	// ErrInUse: another process holds the data directory's lock.
	ErrInUse = errors.New("raftkv: data dir in use")
	// ErrWrongNode: the data directory belongs to a node with another ID.
	ErrWrongNode = errors.New("raftkv: data dir belongs to another node")
)

// Lock is the exclusive lock of a data directory, held until Close or until
// the process ends (the kernel drops it then, SIGKILL included).
type Lock struct {
	f   *os.File
	dir string
}

// Acquire creates dir if needed and takes its lock without waiting: when
// another process holds it, it fails at once with ErrInUse, naming that
// process's pid.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftkv: data dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("raftkv: data dir lock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if data, err := os.ReadFile(path); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
					holder = "pid " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is in use by %s (it holds %s): stop that node first, or give this one another --data-dir", ErrInUse, dir, holder, path)
		}
		return nil, fmt.Errorf("raftkv: data dir lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	// A pid that could not be written only makes a later error vaguer.
	return &Lock{f: f, dir: dir}, nil
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Dir returns the locked directory.
func (l *Lock) Dir() string { return l.dir }

// Close releases the lock. Idempotent.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}

// CheckNodeID records id as the directory's node ID if it has none yet, and
// fails with ErrWrongNode if it has another one. Raft knows a member by its
// ID: a data directory started under a new ID would be a stranger to the
// cluster that still lists it under the old one.
func CheckNodeID(dir, id string) error {
	path := filepath.Join(dir, NodeIDFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if have := strings.TrimSpace(string(data)); have != id {
			return fmt.Errorf("%w: %s was created for node %q, and this is --node-id %q. "+
				"Start it as %q; to rename a node, remove it from the cluster ('raftkv remove %s' on a member), "+
				"then start it as %q with a new, empty data dir and --join", ErrWrongNode, dir, have, id, have, have, id)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		return writeFileSync(path, []byte(id+"\n"))
	default:
		return fmt.Errorf("raftkv: reading %s: %w", path, err)
	}
}

// writeFileSync writes a new file atomically and durably: a temporary file,
// synced, renamed over path, and the directory synced.
func writeFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ModeChange is a mode FixModes changed.
type ModeChange struct {
	Path     string
	Old, New fs.FileMode
}

func (c ModeChange) String() string { return fmt.Sprintf("%s: %04o -> %04o", c.Path, c.Old, c.New) }

// FixModes makes dir and everything under it private to its owner: it
// removes the group and other permissions of every directory (0755 becomes
// 0700) and file (0644 becomes 0600): the private key, the trust list, the
// Raft log (BoltDB file or WAL segments), the snapshots, the plugin cache.
// Public keys (*.pub) are left as they are. Symbolic links are not followed.
// It returns what it changed, for the caller to log. A node runs it at start
// on its locked directory; files created later get the process's umask
// (raftkv serve sets 077), because hashicorp/raft creates its snapshot files
// and directories with os.Create and MkdirAll(0755).
func FixModes(dir string) ([]ModeChange, error) {
	var changed []ModeChange
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 || (!d.IsDir() && !d.Type().IsRegular()) {
			return nil
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".pub") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := info.Mode().Perm()
		if perm&0o077 == 0 {
			return nil
		}
		want := perm &^ 0o077
		if err := os.Chmod(path, want|(info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))); err != nil {
			return err
		}
		changed = append(changed, ModeChange{Path: path, Old: perm, New: want})
		return nil
	})
	if err != nil {
		return changed, fmt.Errorf("raftkv: making the data dir %s private: %w", dir, err)
	}
	return changed, nil
}

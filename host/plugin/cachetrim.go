package plugin

import (
	"cmp"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultCacheMaxBytes is the bound a node puts on its compiled-code cache
// (Config.CacheMaxBytes): room for some seventy compiled Go plugins of 4 MB
// (about 14 MB each once compiled).
const DefaultCacheMaxBytes = 1 << 30

// trimCache removes the oldest files of the compiled-code cache under dir
// until the rest take at most max bytes, and returns how many it removed
// and the bytes left.
//
// wazero's cache has no eviction: every module a node ever compiled stays,
// those refused after compiling (a failed check, a start function that
// traps or runs out of fuel) included, so that without a bound a token
// holder could fill the disk with deploys that all fail. Age is the file's
// modification time, which is when wazero wrote it: a module in use that
// is evicted is compiled again at the next start, nothing worse. Files
// wazero is still writing (name.*.tmp, renamed when complete) are left
// alone, and so is a file removed meanwhile by another node sharing the
// directory.
func trimCache(dir string, max int64) (removed int, left int64, err error) {
	type entry struct {
		path string
		size int64
		mod  time.Time
	}
	var files []entry
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), ".tmp") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed since the directory was read
		}
		files = append(files, entry{path, info.Size(), info.ModTime()})
		left += info.Size()
		return nil
	})
	if err != nil || left <= max {
		return 0, left, err
	}
	slices.SortFunc(files, func(a, b entry) int { return cmp.Or(a.mod.Compare(b.mod), strings.Compare(a.path, b.path)) })
	for _, f := range files {
		if left <= max {
			break
		}
		if err := os.Remove(f.path); err != nil && !os.IsNotExist(err) {
			return removed, left, err
		}
		removed++
		left -= f.size
	}
	return removed, left, nil
}

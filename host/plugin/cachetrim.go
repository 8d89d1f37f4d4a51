package plugin

import (
	"cmp"
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

// trimCache removes the oldest compiled modules of the cache under dir
// until the rest take at most max bytes, and returns how many it removed
// and the bytes left.
//
// wazero's cache has no eviction: every module a node ever compiled stays,
// those refused after compiling (a failed check, a start function that
// traps or runs out of fuel) included, so that without a bound a token
// holder could fill the disk with deploys that all fail. Age is the file's
// modification time, which is when wazero wrote it: a module in use that
// is evicted is compiled again at the next start, nothing worse.
//
// Only wazero's own files count and go: dir/wazero-<version>-<arch>-<os>/
// <64 hex digits>, its key. The directory may hold anything else (an
// operator may point --plugin-cache-dir at the data dir, or share it), and
// none of that is touched. Files wazero is still writing (key.*.tmp,
// renamed when complete) do not match, and a file removed meanwhile by
// another node sharing the directory is skipped.
func trimCache(dir string, max int64) (removed int, left int64, err error) {
	type entry struct {
		path string
		size int64
		mod  time.Time
	}
	paths, err := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	if err != nil {
		return 0, 0, err
	}
	var files []entry
	for _, p := range paths {
		if !isCacheKey(filepath.Base(p)) {
			continue
		}
		info, err := os.Lstat(p)
		if err != nil || !info.Mode().IsRegular() {
			continue // removed since the directory was read, or not wazero's
		}
		files = append(files, entry{p, info.Size(), info.ModTime()})
		left += info.Size()
	}
	if left <= max {
		return 0, left, nil
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

// isCacheKey reports whether name is a wazero cache file's: a sha256, in
// 64 lower-case hex digits.
func isCacheKey(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, c := range []byte(name) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

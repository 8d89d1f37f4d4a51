// Package buildinfo is raftkv's version: the version, commit and build time
// the Makefile stamps into the binary with -ldflags -X, falling back to what
// the Go toolchain records (the module version, and the VCS revision and time
// when the build ran with -buildvcs, which the build machines turn off with
// GOFLAGS=-buildvcs=false).
//
//	go build -ldflags "-X github.com/raftkv/raftkv/internal/buildinfo.version=v1.2.0 \
//	  -X github.com/raftkv/raftkv/internal/buildinfo.commit=$(git rev-parse HEAD) \
//	  -X github.com/raftkv/raftkv/internal/buildinfo.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Set by the linker (-ldflags -X); empty in a plain "go build".
var (
	version   string
	commit    string
	buildTime string
)

// Info describes a build.
type Info struct {
	Version   string `json:"version"`              // "v1.2.0", "v1.2.0-3-gabcdef0-dirty", or "(devel)"
	Commit    string `json:"commit,omitempty"`     // the full VCS revision, when known
	BuildTime string `json:"build_time,omitempty"` // RFC 3339, UTC, when known
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"` // GOOS/GOARCH
}

// String is the one-line form "raftkv version" prints.
func (i Info) String() string {
	s := "raftkv " + i.Version
	if i.Commit != "" {
		s += " commit " + shortCommit(i.Commit)
	}
	if i.BuildTime != "" {
		s += " built " + i.BuildTime
	}
	return s + fmt.Sprintf(" %s %s", i.GoVersion, i.Platform)
}

// shortCommit is the first 12 hex digits of a revision, keeping a "-dirty"
// suffix.
func shortCommit(c string) string {
	rev, dirty := strings.CutSuffix(c, "-dirty")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

var (
	once   sync.Once
	cached Info
)

// Get returns this binary's build information.
func Get() Info {
	once.Do(func() { cached = resolve(version, commit, buildTime, debug.ReadBuildInfo) })
	return cached
}

// resolve merges the linker's values with the toolchain's build information:
// a value stamped by the linker wins.
func resolve(v, c, t string, read func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: v, Commit: c, BuildTime: t, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := read(); ok {
		if i.Version == "" && bi.Main.Version != "" {
			i.Version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				if i.BuildTime == "" {
					i.BuildTime = s.Value // the commit's time: the best the toolchain knows
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && c == "" && i.Commit != "" {
			i.Commit += "-dirty"
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	return i
}

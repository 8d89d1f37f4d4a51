package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveLinkerWins(t *testing.T) {
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1111111111111111"}, {Key: "vcs.time", Value: "2020-01-01T00:00:00Z"},
		}}, true
	}
	i := resolve("v1.2.3", "abcdef0123456789", "2026-12-03T14:00:00Z", read)
	if i.Version != "v1.2.3" || i.Commit != "abcdef0123456789" || i.BuildTime != "2026-12-03T14:00:00Z" {
		t.Fatalf("got %+v", i)
	}
	if s := i.String(); !strings.HasPrefix(s, "raftkv v1.2.3 commit abcdef012345 built 2026-12-03T14:00:00Z go") {
		t.Fatalf("String = %q", s)
	}
}

func TestResolveFallsBackToBuildInfo(t *testing.T) {
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1111111111111111"}, {Key: "vcs.time", Value: "2020-01-01T00:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, true
	}
	i := resolve("", "", "", read)
	if i.Version != "v0.9.0" || i.Commit != "1111111111111111-dirty" || i.BuildTime != "2020-01-01T00:00:00Z" {
		t.Fatalf("got %+v", i)
	}
}

func TestResolveNothingKnown(t *testing.T) {
	i := resolve("", "", "", func() (*debug.BuildInfo, bool) { return nil, false })
	if i.Version != "(devel)" || i.Commit != "" || i.BuildTime != "" || i.GoVersion == "" {
		t.Fatalf("got %+v", i)
	}
	if strings.Contains(i.String(), "commit") {
		t.Fatalf("String = %q", i.String())
	}
}

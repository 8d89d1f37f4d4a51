package system_test

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/buildinfo"
)

// TestVersionStamped checks that the version, commit and build time stamped
// by scripts/ldflags.sh (what 'make build' and the Docker build use) reach
// every place an operator looks: 'raftkv version', '--version', GET
// /v1/version, GET /v1/cluster, the raftkv_build_info metric and the start-up
// log line.
func TestVersionStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary; not in -short")
	}
	bin := buildBinary(t)
	commit := ""
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^raftkv ` + regexp.QuoteMeta(testVersion) + ` .*built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ go1`).MatchString(line) {
		t.Fatalf("raftkv version: %q", line)
	}
	if commit != "" && !strings.Contains(line, "commit "+commit[:12]) {
		t.Fatalf("raftkv version: %q lacks commit %s", line, commit[:12])
	}
	if out2, err := exec.Command(bin, "--version").Output(); err != nil || strings.TrimSpace(string(out2)) != line {
		t.Fatalf("raftkv --version: %q, %v; want %q", out2, err, line)
	}
	out, err = exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var bi buildinfo.Info
	if err := json.Unmarshal(out, &bi); err != nil {
		t.Fatal(err)
	}
	if bi.Version != testVersion || bi.BuildTime == "" || (commit != "" && !strings.HasPrefix(bi.Commit, commit)) {
		t.Fatalf("version --json: %+v", bi)
	}

	p := newProc(t, bin, "v1", "127.0.0.1", "")
	p.start()
	e2eCluster{p}.waitReady(t, 1)
	var got buildinfo.Info
	r := mustHTTP(t, 200, "GET", p.url()+"/v1/version", nil)
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got != bi {
		t.Fatalf("/v1/version: %s (%v), want %+v", r.body, err, bi)
	}
	var c struct {
		Version string `json:"version"`
	}
	r = mustHTTP(t, 200, "GET", "http://"+p.mgmt+"/v1/cluster", nil)
	if err := json.Unmarshal([]byte(r.body), &c); err != nil || c.Version != testVersion {
		t.Fatalf("/v1/cluster on the management address: %s", r.body)
	}
	r = mustHTTP(t, 200, "GET", p.url()+"/metrics", nil)
	want := regexp.MustCompile(`(?m)^raftkv_build_info\{build_time="` + regexp.QuoteMeta(bi.BuildTime) +
		`",commit="` + regexp.QuoteMeta(bi.Commit) + `",goversion="go[^"]+",version="` + regexp.QuoteMeta(testVersion) + `"\} 1$`)
	if !want.MatchString(r.body) {
		t.Fatalf("/metrics has no %s:\n%s", want, grepLines(r.body, "raftkv_build_info"))
	}
	poll(t, 10*time.Second, "the start-up log line", func() error {
		for _, l := range strings.Split(p.log(1), "\n") {
			if strings.Contains(l, "raftkv serving") && strings.Contains(l, "version="+testVersion) &&
				strings.Contains(l, "build_time="+bi.BuildTime) {
				return nil
			}
		}
		return errString("no 'raftkv serving' line with the version:\n" + p.log(1))
	})
}

type errString string

func (e errString) Error() string { return string(e) }

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeToken writes a token file (mode 0600) and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeRefusesExposedWithoutToken: a node that would listen beyond
// loopback on an HTTP port with no token does not start, and says how to
// fix it; a loopback node, a token or --insecure-no-token start.
func TestServeRefusesExposedWithoutToken(t *testing.T) {
	dir := t.TempDir()
	base := []string{"serve", "--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"), "--raft-addr", "127.0.5.1:0"}
	for _, c := range [][]string{
		{"--http-addr", "0.0.0.0:0"},
		{"--http-addr", ":0"},
		{"--http-addr", "127.0.5.1:0", "--mgmt-addr", "[::]:0"},
		{"--http-addr", "127.0.5.1:0", "--mgmt-addr", "", "--pprof-addr", "0.0.0.0:0"},
		{"--http-addr", "node.example:0"},
	} {
		r := cli(append(base, c...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "listens beyond loopback and no token is set") ||
			!strings.Contains(r.stderr, "--insecure-no-token") || !strings.Contains(r.stderr, "--token-file") {
			t.Errorf("%v: exit %d, stderr %s", c, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "n1")); !os.IsNotExist(err) {
			t.Fatalf("%v: a refused node created its data directory (%v)", c, err)
		}
	}
	tok := writeToken(t, strings.Repeat("7", 32))
	for _, c := range [][]string{
		{"--http-addr", "127.0.5.1:0", "--mgmt-addr", "localhost:0", "--pprof-addr", "[::1]:0"},
		{"--http-addr", "0.0.0.0:0", "--token-file", tok},
		{"--http-addr", "0.0.0.0:0", "--insecure-no-token"},
	} {
		if _, err := parseServeFlags(append(base[1:], c...), os.Stdout); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
}

// TestTokenFile: --token-file sets the token without putting it on the
// command line, the CLI reads it from --token-file and RAFTKV_TOKEN_FILE,
// and an empty or short file is refused with a message naming it.
func TestTokenFile(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	file := writeToken(t, secret)
	pprofAddr := freeAddr(t, "127.0.5.1")
	n := startInProcess(t, "--token-file", file, "--pprof-addr", pprofAddr)
	if strings.Contains(strings.Join(n.Args, " "), secret) {
		t.Fatal("the token is on the command line")
	}
	if r := cli("put", "k", "v", "--addr", n.URL); r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Fatalf("no token: %+v", r)
	}
	mustCLI(t, "put", "k", "v", "--addr", n.URL, "--token-file", file)
	t.Setenv("RAFTKV_TOKEN_FILE", file)
	if out := mustCLI(t, "get", "k", "--addr", n.URL); out != "v\n" {
		t.Fatalf("get with RAFTKV_TOKEN_FILE: %q", out)
	}
	if r := cli("get", "k", "--addr", n.URL, "--token", secret); r.code != 2 || !strings.Contains(r.stderr, "exclusive") {
		t.Fatalf("--token with RAFTKV_TOKEN_FILE: %+v", r)
	}
	t.Setenv("RAFTKV_TOKEN_FILE", "")

	// The profiler is behind the token: its cmdline page shows the
	// command line, which would hold a --token.
	for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/"} {
		r, err := doHTTP("GET", "http://"+pprofAddr+path, nil)
		if err != nil || r.status != 401 {
			t.Fatalf("GET %s without the token: %+v %v", path, r, err)
		}
		r, err = doHTTP("GET", "http://"+pprofAddr+path, nil, "Authorization", "Bearer "+secret)
		if err != nil || r.status != 200 {
			t.Fatalf("GET %s with the token: %+v %v", path, r, err)
		}
	}

	short := writeToken(t, "tooshort")
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	for f, want := range map[string]string{short: "shorter than 16 bytes", empty: "is empty", "/nonexistent/token": "no such file"} {
		r := cli("serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.5.1:0", "--token-file", f)
		if r.code != 2 || !strings.Contains(r.stderr, "--token-file") || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, f) {
			t.Errorf("serve --token-file %s: exit %d, stderr %s", f, r.code, r.stderr)
		}
		r = cli("get", "k", "--addr", n.URL, "--token-file", f)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("get --token-file %s: exit %d, stderr %s", f, r.code, r.stderr)
		}
	}
}

// TestDataDirModes: a data directory left 0755 with 0644 files (the private
// key included, which the transport would refuse) is made private when the
// node starts, and the files the node creates while it runs (the Raft log,
// snapshots) are its owner's alone.
func TestDataDirModes(t *testing.T) {
	n := startInProcess(t, "--snapshot-threshold", "4", "--snapshot-interval", "100ms")
	for i := range 10 {
		mustCLI(t, "put", fmt.Sprint("k", i), "v", "--addr", n.URL)
	}
	snapshot := func() error {
		m, _ := filepath.Glob(filepath.Join(n.DataDir, "snapshots", "*", "state.bin"))
		if len(m) == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	}
	poll(t, 30*time.Second, "a snapshot on disk", snapshot)
	private := func(what string) {
		t.Helper()
		var loose []string
		filepath.WalkDir(n.DataDir, func(p string, d fs.DirEntry, err error) error {
			// The running node removes old snapshots and temporary files
			// while the walk goes on (CI: a file listed, then gone).
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&fs.ModeSymlink == 0 && !strings.HasSuffix(p, ".pub") && fi.Mode().Perm()&0o077 != 0 {
				loose = append(loose, fmt.Sprintf("%s %04o", p, fi.Mode().Perm()))
			}
			return nil
		})
		if len(loose) > 0 {
			t.Errorf("%s: readable by others:\n%s", what, strings.Join(loose, "\n"))
		}
	}
	private("created by the node")
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}

	// Loosen everything, as an old version or a lax umask would leave it.
	filepath.WalkDir(n.DataDir, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
	n.start(t)
	private("after a restart on a loosened data dir")
	if !strings.Contains(n.Logs.String(), "removed group and other permissions") {
		t.Error("the fixes were not logged")
	}
	if out := mustCLI(t, "get", "k9", "--addr", n.URL); out != "v\n" {
		t.Fatalf("k9 after the restart: %q", out)
	}
}

// TestServeBrowserGuard replays the browser attacks against a
// token-less node as raftkv serve wires it: a form-encoded trust request, a
// cross-site seed join on the management port and a DNS-rebound read are
// refused; the machine's host name and --allowed-hosts names are answered.
func TestServeBrowserGuard(t *testing.T) {
	n := startInProcess(t, "--allowed-hosts", "kv.internal.example, other.example")
	mustCLI(t, "put", "secret", "v", "--addr", n.URL)
	_, port, _ := strings.Cut(n.HTTP, ":")
	line := `{"line":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl evil"}`
	for _, c := range []struct {
		name, method, url, body string
		hdrs                    []string
		want                    int
	}{
		{"form trust", "POST", "http://" + n.Mgmt + "/v1/cluster/trust", line, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"cross-site seed join", "GET", "http://" + n.Mgmt + "/join?peerID=evil&peerAddress=127.0.5.9:9", "", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"foreign Origin", "POST", n.URL + "/v1/txn", `{"ops":[{"op":"DELETE","key":"secret"}]}`, []string{"Content-Type", "application/json", "Origin", "http://evil.example"}, 403},
		{"rebound read", "GET", n.URL + "/v1/kv/secret", "", []string{"Host", "evil.example:" + port}, 403},
		{"allowed name", "GET", n.URL + "/v1/kv/secret", "", []string{"Host", "KV.internal.example:" + port}, 200},
		{"second allowed name", "GET", n.URL + "/v1/kv/secret", "", []string{"Host", "other.example"}, 200},
		{"localhost", "GET", n.URL + "/v1/kv/secret", "", []string{"Host", "localhost:" + port}, 200},
	} {
		r, err := doHTTPHost(c.method, c.url, c.body, c.hdrs...)
		if err != nil || r.status != c.want {
			t.Errorf("%s: %+v %v, want %d", c.name, r, err, c.want)
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		if r, err := doHTTPHost("GET", n.URL+"/v1/kv/secret", "", "Host", h+":"+port); err != nil || r.status != 200 {
			t.Errorf("the machine's host name %s: %+v %v", h, r, err)
		}
	}
	if out := mustCLI(t, "get", "secret", "--addr", n.URL); out != "v\n" {
		t.Errorf("secret after the attacks: %q", out)
	}
	// Trusting the node's own line again changes nothing and prints the list.
	pub, err := os.ReadFile(filepath.Join(n.DataDir, "node_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(mustCLI(t, "trust", strings.TrimSpace(string(pub))+" solo", "--addr", n.URL), " evil") {
		t.Error("the form-encoded trust line was added")
	}
}

// doHTTPHost is doHTTP with a "Host" pair in header setting the Host.
func doHTTPHost(method, url, body string, header ...string) (httpResult, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return httpResult{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return httpResult{status: res.StatusCode, body: string(b), header: res.Header}, err
}

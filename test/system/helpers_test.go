package system_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/proctest"
)

// The helpers every test of real addresses shares (internal/proctest).
var (
	wasmCacheDir = proctest.WasmCacheDir
	poll         = proctest.Poll
	freeAddr     = proctest.FreeAddr
)

var httpClient = &http.Client{Timeout: 15 * time.Second}

// httpResult is a plain HTTP answer.
type httpResult struct {
	status int
	body   string
	header http.Header
}

func doHTTP(method, url string, body []byte, header ...string) (httpResult, error) {
	return doHTTPWith(httpClient, method, url, body, header...)
}

// doHTTPWith is doHTTP through client; header is name, value pairs.
func doHTTPWith(client *http.Client, method, url string, body []byte, header ...string) (httpResult, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return httpResult{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, string(data), resp.Header}, err
}

// mustHTTP is doHTTP that fails the test on a transport error or an
// unexpected status.
func mustHTTP(t testing.TB, want int, method, url string, body []byte, header ...string) httpResult {
	t.Helper()
	r, err := doHTTP(method, url, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, r.status, want, r.body)
	}
	return r
}

// cliResult is the outcome of one run of the built binary's CLI.
type cliResult struct {
	code           int
	stdout, stderr string
}

// exitError is the binary's exit code for a command that failed
// (cmd/raftkv/main.go).
const exitError = 1

// cli runs the built binary with args (buildBinary, which skips the test
// under -short) and returns its exit code and output. The command inherits
// the test's environment (RAFTKV_ENDPOINTS, RAFTKV_TOKEN_FILE, ...).
func cli(t testing.TB, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		return cliResult{ee.ExitCode(), out.String(), errb.String()}
	default:
		t.Fatalf("raftkv %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	return cliResult{0, out.String(), errb.String()}
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	r := cli(t, args...)
	if r.code != 0 {
		t.Fatalf("raftkv %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// The API's answers as these tests read them (the CLI decodes the same
// JSON: cmd/raftkv).
type (
	clusterAnswer = kvclient.ClusterInfo
	member        = kvclient.Member
)

func keyPath(key string) string { return kvclient.KeyPath(key) }

// kvItem is a key-value pair as the API encodes it in JSON: UTF-8 bytes as
// "key"/"value", other bytes base64 in "key_b64"/"value_b64".
type kvItem struct {
	Key      string `json:"key,omitempty"`
	KeyB64   string `json:"key_b64,omitempty"`
	Value    string `json:"value,omitempty"`
	ValueB64 string `json:"value_b64,omitempty"`
	Version  uint64 `json:"version,omitempty"`
}

func (it kvItem) key() []byte {
	if it.KeyB64 == "" {
		return []byte(it.Key)
	}
	b, err := base64.StdEncoding.DecodeString(it.KeyB64)
	if err != nil {
		return []byte(it.KeyB64)
	}
	return b
}

// listAnswer is the answer of GET /v1/kv.
type listAnswer struct {
	Items   []kvItem `json:"items"`
	Next    string   `json:"next,omitempty"`
	NextB64 string   `json:"next_b64,omitempty"`
}

// digestAnswer is the answer of GET /v1/plugins/{name}/digest.
type digestAnswer struct {
	Plugin       string `json:"plugin"`
	Digest       string `json:"digest"`
	AppliedIndex uint64 `json:"applied_index"`
	Keys         int    `json:"keys"`
}

// nodeStatus is one member in the output of raftkv status --cluster --json.
type nodeStatus struct {
	kvclient.NodeStatus
	Lag    uint64 `json:"lag"`
	Health string `json:"health"`
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

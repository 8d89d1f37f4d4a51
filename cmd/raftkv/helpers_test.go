package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

// doHTTP sends a request; header is name, value pairs.
func doHTTP(method, url string, body []byte, header ...string) (httpResult, error) {
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
	resp, err := httpClient.Do(req)
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

// cliResult is the outcome of one CLI run.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the CLI in-process through doMain.
func cli(args ...string) cliResult {
	var out, errb bytes.Buffer
	code := doMain(args, &out, &errb)
	return cliResult{code, out.String(), errb.String()}
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	r := cli(args...)
	if r.code != 0 {
		t.Fatalf("raftkv %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// syncBuffer collects a server's logs for the test to print on failure.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// inProcessNode is a node run by this test binary's own serve code.
type inProcessNode struct {
	HTTP, Mgmt, Raft string // addresses
	URL              string // http(s)://HTTP
	DataDir          string
	Logs             *syncBuffer
	Args             []string // the serve command line
	probe            *client
	cancel           context.CancelFunc
	done             chan error
}

// startInProcess runs "raftkv serve" in a goroutine on free 127.0.0.1 ports
// with a fresh data directory, plus extra flags (which override the
// defaults), and waits until the KV plugin answers through this node. The
// node is shut down at the end of the test.
func startInProcess(t testing.TB, extra ...string) *inProcessNode {
	t.Helper()
	n := &inProcessNode{
		HTTP: freeAddr(t, "127.0.0.1"), Mgmt: freeAddr(t, "127.0.0.1"), Raft: freeAddr(t, "127.0.0.1"),
		DataDir: t.TempDir(), Logs: &syncBuffer{},
	}
	n.Args = append([]string{"serve", "--node-id", "solo", "--data-dir", n.DataDir,
		"--http-addr", n.HTTP, "--mgmt-addr", n.Mgmt, "--raft-addr", n.Raft,
		"--plugin-cache-dir", wasmCacheDir(t), "--plugin-cache-max-bytes", "0", "--log-level", "info",
		// A joining node stores the 3.8 MB entry that deployed kv.wasm
		// while it catches up: BoltDB takes 60 to 400 ms to append it on a
		// loaded machine, past a 100 ms leader lease.
		"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--leader-lease-timeout", "300ms"}, extra...)
	token, ca, scheme := "", "", "http"
	for i := 0; i+1 < len(extra); i++ {
		switch extra[i] {
		case "--token":
			token = extra[i+1]
		case "--token-file":
			var err error
			if token, err = kvclient.ReadTokenFile(extra[i+1]); err != nil {
				t.Fatal(err)
			}
		case "--ca-cert":
			ca = extra[i+1]
		case "--tls-cert":
			scheme = "https"
		}
	}
	n.URL = scheme + "://" + n.HTTP
	var err error
	if n.probe, err = newClient(n.URL, token, ca, 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("logs of in-process node %s:\n%s", n.HTTP, n.Logs)
		}
	})
	n.start(t)
	return n
}

// start runs the node with n.Args and waits until it serves the KV plugin.
func (n *inProcessNode) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() {
		n.done <- errorFromCode(run(ctx, n.Args, io.Discard, n.Logs))
	}()
	poll(t, 60*time.Second, "in-process node serving the KV plugin", func() error {
		select {
		case err := <-n.done:
			n.done <- err
			return fmt.Errorf("serve returned: %v", err)
		default:
		}
		resp, err := n.probe.request(context.Background(), "GET", "/v1/kv/readiness-probe", url.Values{"consistency": {"stale"}}, nil, "")
		if err == nil {
			resp.Body.Close()
			return errors.New("the probe key exists")
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.Contains(ae.Message, "key not found") {
			return nil
		}
		return err
	})
}

// stop shuts the node down as SIGTERM would and waits for it.
func (n *inProcessNode) stop() error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	select {
	case err := <-n.done:
		n.done <- err
		return err
	case <-time.After(30 * time.Second):
		return errors.New("serve did not return within 30s of being cancelled")
	}
}

func errorFromCode(code int) error {
	if code != 0 {
		return fmt.Errorf("exit code %d", code)
	}
	return nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

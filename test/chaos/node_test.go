package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one raftkv server process, started again with the same command
// line (same ID, addresses and data directory) after every kill.
type node struct {
	id, ip           string
	http, mgmt, raft string // host:port
	dataDir, logDir  string
	args             []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
	paused bool
}

// freePort returns a port free on ip at the time of the call. Ports are
// chosen once per node and kept across restarts; the node's IP is its own,
// so nothing else takes them meanwhile.
func freePort(ip string) (string, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return "", fmt.Errorf("no free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func newNode(bin, id, ip, dataDir, logDir string, extra []string) (*node, error) {
	n := &node{id: id, ip: ip, dataDir: dataDir, logDir: logDir}
	for _, p := range []*string{&n.http, &n.mgmt, &n.raft} {
		a, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		*p = a
	}
	n.args = append([]string{bin, "serve", "--node-id", id, "--data-dir", dataDir,
		"--http-addr", n.http, "--mgmt-addr", n.mgmt, "--raft-addr", n.raft}, extra...)
	return n, nil
}

func (n *node) url() string { return "http://" + n.http }

func (n *node) logFile(start int) string {
	return filepath.Join(n.logDir, fmt.Sprintf("%s-%d.log", n.id, start))
}

// start runs the process; its output goes to a new log file per start.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s is already running", n.id)
	}
	n.starts++
	f, err := os.Create(n.logFile(n.starts))
	if err != nil {
		return err
	}
	cmd := exec.Command(n.args[0], n.args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// The node's own flags only: no configuration from the environment.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", n.id, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.paused = cmd, exited, false
	return nil
}

// kill sends SIGKILL (to a paused process too) and waits until it is gone.
func (n *node) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd, n.paused = nil, false
}

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s is not running", n.id)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%v to %s: %w", sig, n.id, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return nil
}

func (n *node) isPaused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// running reports whether the process was started and has not exited.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// exitedUnasked reports whether the process ended although nobody killed it.
func (n *node) exitedUnasked() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the node's latest log.
func (n *node) logTail(lines int) string {
	n.mu.Lock()
	start := n.starts
	n.mu.Unlock()
	f, err := os.Open(n.logFile(start))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var ring []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ring = append(ring, sc.Text())
		if len(ring) > lines {
			ring = ring[1:]
		}
	}
	return strings.Join(ring, "\n")
}

// adminClient is the HTTP client of the harness's own requests (status,
// readiness, membership, deploys), apart from the workload's clients.
var adminClient = &http.Client{Timeout: 10 * time.Second}

// deployClient sends plugin modules, bounded by the request's context only.
var deployClient = &http.Client{}

// answer is an HTTP answer.
type answer struct {
	status int
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, bytes.TrimSpace(a.body)) }

// errorCode is the stable code of a JSON error answer ("" if none).
func (a answer) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(a.body, &e)
	return e.Error.Code
}

// do sends a request; header is name, value pairs.
func do(ctx context.Context, c *http.Client, method, url string, body []byte, header ...string) (answer, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{resp.StatusCode, data}, nil
}

// get is an admin GET that wants 200 and decodes a JSON answer into v.
func (n *node) get(path string, v any) error {
	a, err := do(context.Background(), adminClient, "GET", n.url()+path, nil)
	if err != nil {
		return err
	}
	if a.status != 200 {
		return fmt.Errorf("GET %s on %s: %s", path, n.id, a)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("GET %s on %s: %w", path, n.id, err)
	}
	return nil
}

// clusterView is GET /v1/cluster.
type clusterView struct {
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	Members      []struct {
		ID       string `json:"id"`
		Address  string `json:"address"`
		Suffrage string `json:"suffrage"`
	} `json:"members"`
}

// status is the part of GET /v1/status?digests=true the checks compare.
type status struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	Leader       string `json:"leader"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Ready        bool   `json:"ready"`
	Failure      string `json:"failure"`
	Keys         int    `json:"keys"`
	Plugins      []struct {
		Name   string `json:"name"`
		Hash   string `json:"hash"`
		Keys   int    `json:"keys"`
		Digest string `json:"digest"`
	} `json:"plugins"`
}

// digests is the node's state as the checks compare it: applied index, and
// each plugin's name, module hash, key count and state digest.
func (s status) digests() string {
	var b strings.Builder
	fmt.Fprintf(&b, "applied %d:", s.AppliedIndex)
	for _, p := range s.Plugins {
		fmt.Fprintf(&b, " %s(module %.12s, %d keys, digest %.16s)", p.Name, p.Hash, p.Keys, p.Digest)
	}
	return b.String()
}

// ready reports whether /readyz answers 200, with the answer otherwise.
func (n *node) ready() error {
	a, err := do(context.Background(), adminClient, "GET", n.url()+"/readyz", nil)
	if err != nil {
		return err
	}
	if a.status != 200 {
		return errors.New(a.String())
	}
	return nil
}

package system_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
)

// buildOnce builds the raftkv binary once per test run.
var buildOnce struct {
	sync.Once
	bin string
	err error
}

// testVersion is the version buildBinary stamps into the binary.
const testVersion = "v0.0.0-e2e"

// buildBinary builds the raftkv binary once per test process. A test that
// runs it is a system test: under go test -short (make test) it skips.
func buildBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the raftkv binary: a system test, skipped under -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "raftkv-e2e-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.bin = filepath.Join(dir, "raftkv")
		// Stamped like 'make build' (scripts/ldflags.sh), with a known version.
		ldflags, err := exec.Command("env", "VERSION="+testVersion, "sh", "../../scripts/ldflags.sh").Output()
		if err != nil {
			buildOnce.err = fmt.Errorf("scripts/ldflags.sh: %v", err)
			return
		}
		cmd := exec.Command("go", "build", "-ldflags", strings.TrimSpace(string(ldflags)), "-o", buildOnce.bin, "../../cmd/raftkv")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.bin
}

// proc is one raftkv server process.
type proc struct {
	t                *testing.T
	id, ip           string
	http, mgmt, raft string
	args             []string
	logDir           string
	starts           int
	cmd              *exec.Cmd
	exited           chan struct{}
}

// fastRaft keeps elections short so that failover takes well under a second.
var fastRaft = []string{"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--leader-lease-timeout", "150ms"}

// newProc prepares a node on ip with free ports; join is the --join value
// ("" to bootstrap).
func newProc(t *testing.T, bin, id, ip, join string) *proc {
	dir := t.TempDir()
	p := &proc{t: t, id: id, ip: ip, logDir: dir,
		http: freeAddr(t, ip), mgmt: freeAddr(t, ip), raft: freeAddr(t, ip)}
	p.args = append([]string{bin, "serve", "--node-id", id, "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", p.http, "--mgmt-addr", p.mgmt, "--raft-addr", p.raft,
		"--plugin-cache-dir", wasmCacheDir(t), "--plugin-cache-max-bytes", "0", "--log-level", "info"}, fastRaft...)
	if join != "" {
		p.args = append(p.args, "--join", join)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			for i := 1; i <= p.starts; i++ {
				data, _ := os.ReadFile(p.logFile(i))
				t.Logf("=== %s, start %d (%s):\n%s", id, i, strings.Join(p.args[1:], " "), data)
			}
		}
	})
	return p
}

func (p *proc) url() string          { return "http://" + p.http }
func (p *proc) logFile(n int) string { return filepath.Join(p.logDir, fmt.Sprintf("log-%d.txt", n)) }
func (p *proc) log(start int) string { data, _ := os.ReadFile(p.logFile(start)); return string(data) }

// start runs the process with p.args, the same command line every time.
func (p *proc) start() {
	p.t.Helper()
	p.starts++
	f, err := os.Create(p.logFile(p.starts))
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), "NODE_ID=", "BOOTSTRAP=", "JOIN_ADDR=")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		f.Close()
		close(exited)
	}(p.cmd, p.exited)
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// terminate sends SIGTERM and waits for a graceful exit.
func (p *proc) terminate() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill()
		return errors.New("no exit within 20s of SIGTERM")
	}
	st := p.cmd.ProcessState
	p.cmd = nil
	if !st.Success() {
		return fmt.Errorf("exit status %v", st)
	}
	return nil
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// cluster returns GET /v1/cluster of this node.
func (p *proc) cluster() (clusterAnswer, error) {
	var a clusterAnswer
	r, err := doHTTP("GET", p.url()+"/v1/cluster", nil)
	if err != nil {
		return a, err
	}
	if r.status != 200 {
		return a, fmt.Errorf("GET /v1/cluster: %d %s", r.status, r.body)
	}
	return a, json.Unmarshal([]byte(r.body), &a)
}

// staleGet reads a key from the node's own state.
func (p *proc) staleGet(key string) (string, error) {
	r, err := doHTTP("GET", p.url()+keyPath(key)+"?consistency=stale", nil)
	if err != nil {
		return "", err
	}
	if r.status != 200 {
		return "", fmt.Errorf("stale GET %s on %s: %d %s", key, p.id, r.status, r.body)
	}
	return r.body, nil
}

// e2eCluster is a set of processes.
type e2eCluster []*proc

// startCluster starts ids[0] on ips[0] as the bootstrap node and the others
// joining through it (the seed's host:port management address for the
// second, the HTTP URL for the others), then waits until every node serves.
func startCluster(t *testing.T, bin string, ids, ips []string) e2eCluster {
	var c e2eCluster
	for i, id := range ids {
		join := ""
		switch {
		case i == 1:
			join = c[0].mgmt
		case i > 1:
			join = c[0].url()
		}
		c = append(c, newProc(t, bin, id, ips[i], join))
	}
	for _, p := range c {
		p.start()
	}
	c.waitReady(t, len(ids))
	return c
}

// waitReady waits until every running node sees n voters and a leader, and
// serves the KV plugin from its own state.
func (c e2eCluster) waitReady(t *testing.T, n int) {
	t.Helper()
	for _, p := range c {
		if !p.running() {
			continue
		}
		poll(t, 60*time.Second, p.id+" ready", func() error {
			if !p.running() {
				return errors.New("the process exited")
			}
			// First the KV plugin in the node's own state (a node that just
			// joined activates it when it applies the deploy entry), then
			// its view of the cluster.
			r, err := doHTTP("GET", p.url()+"/v1/kv/probe?consistency=stale", nil)
			if err != nil {
				return err
			}
			if r.status != http.StatusNotFound || !strings.Contains(r.body, "key not found") {
				return fmt.Errorf("stale read: %d %s", r.status, r.body)
			}
			a, err := p.cluster()
			if err != nil {
				return err
			}
			if a.Leader == "" || len(a.Members) != n {
				return fmt.Errorf("leader %q, %d members, want %d", a.Leader, len(a.Members), n)
			}
			return nil
		})
	}
}

// leader returns the process that leads, as the running nodes agree.
func (c e2eCluster) leader(t *testing.T) *proc {
	t.Helper()
	var l *proc
	poll(t, 30*time.Second, "a leader", func() error {
		l = nil
		for _, p := range c {
			if !p.running() {
				continue
			}
			a, err := p.cluster()
			if err != nil {
				return err
			}
			found := c.byID(a.Leader)
			if found == nil || !found.running() {
				return fmt.Errorf("%s sees leader %q", p.id, a.Leader)
			}
			if l != nil && l != found {
				return fmt.Errorf("leaders %s and %s", l.id, found.id)
			}
			l = found
		}
		return nil
	})
	return l
}

func (c e2eCluster) byID(id string) *proc {
	for _, p := range c {
		if p.id == id {
			return p
		}
	}
	return nil
}

// followers returns the running nodes but the leader.
func (c e2eCluster) followers(t *testing.T) []*proc {
	l := c.leader(t)
	var fs []*proc
	for _, p := range c {
		if p != l && p.running() {
			fs = append(fs, p)
		}
	}
	return fs
}

// converged waits until every running node reports the same KV digest at the
// same applied index, and returns it.
func (c e2eCluster) converged(t *testing.T) digestAnswer {
	t.Helper()
	var d digestAnswer
	poll(t, 20*time.Second, "replicas converged", func() error {
		var ds []digestAnswer
		for _, p := range c {
			if !p.running() {
				continue
			}
			var one digestAnswer
			r, err := doHTTP("GET", p.url()+"/v1/plugins/kv/digest", nil)
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(r.body), &one); err != nil || r.status != 200 {
				return fmt.Errorf("digest of %s: %d %s", p.id, r.status, r.body)
			}
			ds = append(ds, one)
		}
		for _, o := range ds[1:] {
			if o.Digest != ds[0].Digest || o.Keys != ds[0].Keys {
				return fmt.Errorf("digests differ: %+v", ds)
			}
		}
		d = ds[0]
		return nil
	})
	return d
}

// listAll lists every key through a node at the given consistency.
func listAll(t *testing.T, p *proc, consistency string) []kvItem {
	t.Helper()
	var a listAnswer
	out := mustCLI(t, "list", "--json", "--consistency", consistency, "--addr", p.url())
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	return a.Items
}

func msgpackBody(t *testing.T, v map[string]any) []byte {
	b, err := abi.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestE2E runs real clusters of the built binary, as separate processes on
// distinct loopback addresses.
func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test of the built binary; not in -short")
	}
	start := time.Now()
	bin := buildBinary(t)
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	a := startCluster(t, bin, []string{"n1", "n2", "n3"}, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"})
	t.Logf("cluster A ready after %v", time.Since(start).Round(time.Millisecond))
	// serve --join hands the member's list of voters to the node it adds
	// (host.Node.ExpectLeaders): until it is added, it hears only them.
	for _, p := range a[1:] {
		if !strings.Contains(p.log(1), "takes Raft RPCs only from the voters its join named") {
			t.Errorf("%s, started with --join, was not told the voters it may hear from:\n%s", p.id, p.log(1))
		}
	}
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("seed-msgpack", func(t *testing.T) {
		fs := a.followers(t)
		l := a.leader(t)
		mp := []string{"Content-Type", "application/msgpack"}
		r := mustHTTP(t, 200, "POST", fs[0].url()+"/insert-val", msgpackBody(t, map[string]any{"op": "SET", "key": "hello", "value": "world"}), mp...)
		if r.body != "ok" {
			t.Fatalf("insert-val SET: %q", r.body)
		}
		for _, p := range []*proc{l, fs[1]} {
			if r := mustHTTP(t, 200, "GET", p.url()+"/get-val?key=hello", nil); r.body != "world" {
				t.Fatalf("get-val on %s: %q", p.id, r.body)
			}
		}
		// The seed's clients send a value with DELETE.
		mustHTTP(t, 200, "POST", fs[1].url()+"/insert-val", msgpackBody(t, map[string]any{"op": "DELETE", "key": "hello", "value": ""}), mp...)
		if r := mustHTTP(t, 404, "GET", fs[0].url()+"/get-val?key=hello", nil); !strings.Contains(r.body, "Key Not Found") && !strings.Contains(r.body, "not_found") {
			t.Fatalf("get-val after DELETE: %q", r.body)
		}
		// Errors are real errors, not "ok".
		r = mustHTTP(t, 400, "POST", l.url()+"/insert-val", []byte{0xc1}, mp...)
		if !strings.Contains(r.body, `"code"`) {
			t.Fatalf("malformed MsgPack: %s", r.body)
		}
	})

	step("v1-through-follower", func(t *testing.T) {
		f := a.followers(t)[0]
		r := mustHTTP(t, 200, "PUT", f.url()+"/v1/kv/a%2Fb", []byte("slash value"))
		var put struct{ Version uint64 }
		if err := json.Unmarshal([]byte(r.body), &put); err != nil || put.Version == 0 {
			t.Fatalf("PUT through %s: %s", f.id, r.body)
		}
		for _, c := range []string{"", "leader", "linearizable", "stale"} {
			c := c
			poll(t, 5*time.Second, "read at "+c, func() error {
				r, err := doHTTP("GET", f.url()+"/v1/kv/a%2Fb?consistency="+c, nil)
				if err != nil {
					return err
				}
				if r.status != 200 || r.body != "slash value" || r.header.Get("X-Raftkv-Version") != fmt.Sprint(put.Version) {
					return fmt.Errorf("consistency %q on %s: %d %q version %q", c, f.id, r.status, r.body, r.header.Get("X-Raftkv-Version"))
				}
				return nil
			})
		}
		// Every replica's stale read catches up.
		for _, p := range a {
			poll(t, 5*time.Second, "stale read on "+p.id, func() error {
				v, err := p.staleGet("a/b")
				if err == nil && v != "slash value" {
					err = fmt.Errorf("got %q", v)
				}
				return err
			})
		}
		mustHTTP(t, 400, "GET", f.url()+"/v1/kv/a%2Fb?consistency=bogus", nil)
		// The CLI, through the follower.
		mustCLI(t, "put", "cli-key", "cli value", "--addr", f.url())
		if out := mustCLI(t, "get", "cli-key", "--consistency", "linearizable", "--addr", f.url()); out != "cli value\n" {
			t.Fatalf("CLI get: %q", out)
		}
	})

	step("cas-conflict", func(t *testing.T) {
		f := a.followers(t)[1]
		r := mustHTTP(t, 200, "PUT", f.url()+"/v1/kv/counter?cas=0", []byte("1"))
		var v struct{ Version uint64 }
		json.Unmarshal([]byte(r.body), &v)
		r = mustHTTP(t, 409, "PUT", f.url()+"/v1/kv/counter?cas=0", []byte("again"))
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal([]byte(r.body), &e); e.Error.Code != "conflict" {
			t.Fatalf("second cas=0: %s", r.body)
		}
		mustHTTP(t, 409, "PUT", f.url()+fmt.Sprintf("/v1/kv/counter?cas=%d", v.Version+1000), []byte("2"))
		mustHTTP(t, 200, "PUT", f.url()+fmt.Sprintf("/v1/kv/counter?cas=%d", v.Version), []byte("2"))
		if res := cli(t, "cas", "counter", fmt.Sprint(v.Version), "3", "--addr", f.url()); res.code != 1 || !strings.Contains(res.stderr, "conflict") {
			t.Fatalf("CLI cas with a stale version: %+v", res)
		}
		if out := mustCLI(t, "get", "counter", "--addr", a.leader(t).url()); out != "2\n" {
			t.Fatalf("counter: %q", out)
		}
	})

	step("prefix-listing", func(t *testing.T) {
		f := a.followers(t)[0]
		mustCLI(t, "txn", "--addr", f.url(), "set", "p/1", "v1", "set", "p/2", "v2", "set", "p/3", "v3",
			"set", "p/4", "v4", "set", "p/5", "v5", "set", "q/1", "other")
		r := mustHTTP(t, 200, "GET", f.url()+"/v1/kv?prefix=p/&limit=2", nil)
		var page listAnswer
		json.Unmarshal([]byte(r.body), &page)
		if len(page.Items) != 2 || page.Items[0].Key != "p/1" || page.Next != "p/3" {
			t.Fatalf("first page: %s", r.body)
		}
		r = mustHTTP(t, 200, "GET", f.url()+"/v1/kv?prefix=p/&limit=10&start="+url.QueryEscape(page.Next), nil)
		page = listAnswer{}
		json.Unmarshal([]byte(r.body), &page)
		if len(page.Items) != 3 || page.Items[2].Key != "p/5" || page.Next != "" {
			t.Fatalf("second page: %s", r.body)
		}
		for _, c := range []string{"stale", "leader", "linearizable"} {
			poll(t, 5*time.Second, "listing at "+c, func() error {
				out := cli(t, "list", "--prefix", "p/", "--keys-only", "--consistency", c, "--addr", f.url())
				if out.stdout != "p/1\np/2\np/3\np/4\np/5\n" {
					return fmt.Errorf("list at %s: %+v", c, out)
				}
				return nil
			})
		}
	})

	step("kill-leader-and-restart", func(t *testing.T) {
		old := a.leader(t)
		before := a.converged(t)
		old.kill()
		newLeader := a.leader(t)
		if newLeader == old {
			t.Fatal("the killed node still leads")
		}
		mustCLI(t, "put", "after-kill", "written without the old leader", "--addr", a.followers(t)[0].url())
		old.start() // the same command line, --join included if it had one
		poll(t, 30*time.Second, old.id+" back with its data", func() error {
			for _, k := range []string{"after-kill", "a/b", "p/5"} {
				if _, err := old.staleGet(k); err != nil {
					return err
				}
			}
			return nil
		})
		restartLog := old.log(old.starts)
		if !strings.Contains(restartLog, "existing state found") || strings.Contains(restartLog, "joined the cluster") {
			t.Fatalf("%s did not rejoin from its data:\n%s", old.id, restartLog)
		}
		a.waitReady(t, 3)
		a.converged(t)
		if got := before.Keys; got == 0 {
			t.Fatal("no keys before the kill")
		}
	})

	step("paused-leader-reads", func(t *testing.T) {
		// Handlers race Raft's own goroutines when the process resumes (a
		// read that skipped the leadership check is caught about one time
		// in three): a few rounds.
		for round := 1; round <= 3; round++ {
			pausedLeaderReads(t, a, round)
		}
	})

	step("join-and-remove-fourth", func(t *testing.T) {
		via := a.followers(t)[0]
		n4 := newProc(t, bin, "n4", "127.0.0.14", via.url())
		n4.start()
		all := append(e2eCluster{n4}, a...)
		all.waitReady(t, 4)
		poll(t, 20*time.Second, "n4 has the data", func() error {
			v, err := n4.staleGet("after-kill")
			if err == nil && v != "written without the old leader" {
				err = fmt.Errorf("got %q", v)
			}
			return err
		})
		all.converged(t)
		if out := mustCLI(t, "members", "--addr", n4.url()); !strings.Contains(out, "127.0.0.14") {
			t.Fatalf("members through n4:\n%s", out)
		}
		mustCLI(t, "remove", "n4", "--addr", a.leader(t).url())
		poll(t, 20*time.Second, "n4 removed", func() error {
			for _, p := range a {
				c, err := p.cluster()
				if err != nil {
					return err
				}
				if len(c.Members) != 3 {
					return fmt.Errorf("%s sees %d members", p.id, len(c.Members))
				}
			}
			return nil
		})
		if err := n4.terminate(); err != nil {
			t.Errorf("n4 after removal: %v", err)
		}
		mustCLI(t, "put", "after-remove", "x", "--addr", a.leader(t).url())
	})

	step("graceful-shutdown", func(t *testing.T) {
		l := a.leader(t)
		if err := l.terminate(); err != nil {
			t.Fatalf("SIGTERM of the leader: %v", err)
		}
		if !strings.Contains(l.log(l.starts), "shutting down") {
			t.Errorf("%s did not log its shutdown", l.id)
		}
		if nl := a.leader(t); nl == l {
			t.Fatal("no new leader")
		}
		l.start()
		a.waitReady(t, 3)
	})

	step("backup-restore-into-fresh-cluster", func(t *testing.T) {
		la := a.leader(t)
		want := listAll(t, la, "linearizable")
		digestA := a.converged(t)
		file := filepath.Join(t.TempDir(), "a.backup")
		res := cli(t, "backup", file, "--addr", la.url())
		if res.code != 0 || !strings.Contains(res.stderr, "bytes written") {
			t.Fatalf("backup: %+v", res)
		}
		b := startCluster(t, bin, []string{"m1", "m2", "m3"}, []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"})
		lb := b.leader(t)
		mustCLI(t, "put", "only-in-b", "overwritten by the restore", "--addr", lb.url())
		// Given a follower alone, the CLI finds the leader's HTTP address
		// (members publish theirs through the log) and restores there.
		res = cli(t, "restore", file, "--addr", b.followers(t)[0].url())
		if res.code != 0 || !strings.Contains(res.stderr, "bytes restored") {
			hint := ""
			if strings.Contains(lb.log(lb.starts), "host key mismatch") {
				hint = "\nthe leader refuses its own members' keys after the restore: the backup's trust list " +
					"(cluster A's keys) replaced cluster B's (host.Node.Restore installs it as is)"
			}
			t.Fatalf("restore: %+v%s", res, hint)
		}
		for _, p := range b {
			poll(t, 30*time.Second, "restored listing on "+p.id, func() error {
				got := listAll(t, p, "stale")
				if !reflect.DeepEqual(got, want) {
					return fmt.Errorf("%s lists %d items, want %d: %v", p.id, len(got), len(want), keysOf(got))
				}
				return nil
			})
		}
		digestB := b.converged(t)
		if digestB.Digest != digestA.Digest || digestB.Keys != digestA.Keys {
			t.Fatalf("digest after restore %+v, want %+v", digestB, digestA)
		}
		// The restored cluster keeps working.
		mustCLI(t, "put", "after-restore", "y", "--addr", b.followers(t)[0].url())
		b.converged(t)
	})

	t.Logf("end-to-end test took %v", time.Since(start).Round(time.Millisecond))
}

// pausedLeaderReads SIGSTOPs the leader (to it, no time passes) until the
// others have elected a leader and acknowledged an overwrite, then resumes
// it: a leader or linearizable read sent to it after the acknowledgement
// must not return the old value (an error, or the new value once it has
// caught up or forwarded the read).
func pausedLeaderReads(t *testing.T, a e2eCluster, round int) {
	key := fmt.Sprintf("paused-%d", round)
	oldValue, newValue := fmt.Sprintf("old-%d", round), fmt.Sprintf("new-%d", round)
	old := a.leader(t)
	mustHTTP(t, 200, "PUT", old.url()+"/v1/kv/"+key, []byte(oldValue))
	a.converged(t)
	var others []*proc
	for _, p := range a {
		if p != old {
			others = append(others, p)
		}
	}
	// Keep-alive connections to the old leader, one client each.
	const conns = 16
	warm := make([]*http.Client, 2*conns)
	for i := range warm {
		warm[i] = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}
		defer warm[i].CloseIdleConnections()
		if r, err := doHTTPWith(warm[i], "GET", old.url()+"/v1/kv/"+key+"?consistency=stale", nil); err != nil || r.body != oldValue {
			t.Fatalf("warming a connection to %s: %v %q", old.id, err, r.body)
		}
	}
	if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	resume := func() {
		if stopped {
			stopped = false
			if err := old.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer resume()
	var nl *proc
	poll(t, 30*time.Second, "a leader other than the paused "+old.id, func() error {
		nl = nil
		for _, p := range others {
			c, err := p.cluster()
			if err != nil {
				return err
			}
			if c.Leader == "" || c.Leader == old.id {
				return fmt.Errorf("%s sees leader %q", p.id, c.Leader)
			}
			nl = a.byID(c.Leader)
		}
		return nil
	})
	poll(t, 20*time.Second, "the overwrite acknowledged by "+nl.id, func() error {
		r, err := doHTTP("PUT", nl.url()+"/v1/kv/"+key, []byte(newValue))
		if err == nil && r.status != 200 {
			err = fmt.Errorf("%d %s", r.status, r.body)
		}
		return err
	})
	// Every read below starts after the acknowledgement. The first ones
	// are sent while the old leader is still stopped, on connections it
	// accepted before (its handlers wait for them in a read), so they
	// are served the moment it resumes; the rest right after SIGCONT.
	type answer struct {
		consistency string
		r           httpResult
		err         error
	}
	answers := make(chan answer, 4*conns)
	var wg sync.WaitGroup
	send := func(client *http.Client, consistency string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := doHTTPWith(client, "GET", old.url()+"/v1/kv/"+key+"?consistency="+consistency, nil)
			answers <- answer{consistency, r, err}
		}()
	}
	for i := range 2 * conns {
		send(warm[i], []string{"leader", "linearizable"}[i%2])
	}
	resume()
	for i := range 2 * conns {
		send(httpClient, []string{"leader", "linearizable"}[i%2])
	}
	wg.Wait()
	close(answers)
	seen := map[string]int{}
	for an := range answers {
		seen[fmt.Sprintf("%s: %d %.60s", an.consistency, an.r.status, an.r.body)]++
		var e struct{ Error struct{ Code string } }
		switch {
		case an.err != nil:
			t.Errorf("%s read on the resumed %s: %v", an.consistency, old.id, an.err)
		case an.r.status == 200 && an.r.body == newValue:
		case an.r.status == 200:
			t.Errorf("%s read on the resumed %s returned %q after %q was acknowledged", an.consistency, old.id, an.r.body, newValue)
		case json.Unmarshal([]byte(an.r.body), &e) != nil || !slices.Contains(readRefusals, e.Error.Code):
			t.Errorf("%s read on the resumed %s: %d %s", an.consistency, old.id, an.r.status, an.r.body)
		}
	}
	t.Logf("reads on the resumed %s: %v", old.id, seen)
	poll(t, 20*time.Second, old.id+" catches up", func() error {
		r, err := doHTTP("GET", old.url()+"/v1/kv/"+key+"?consistency=linearizable", nil)
		if err == nil && (r.status != 200 || r.body != newValue) {
			err = fmt.Errorf("%d %s", r.status, r.body)
		}
		return err
	})
	a.waitReady(t, 3)
}

// readRefusals are the error codes of a read a node cannot serve at the
// consistency asked for.
var readRefusals = []string{"not_leader", "no_leader", "timeout"}

func keysOf(items []kvItem) []string {
	var ks []string
	for _, it := range items {
		ks = append(ks, string(it.key()))
	}
	sort.Strings(ks)
	return ks
}

// TestClusterScripts runs examples/cluster/start.sh and stop.sh with the built
// binary on free ports.
func TestClusterScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; not in -short")
	}
	bin := buildBinary(t)
	base := consecutiveFreePorts(t, 9)
	dir := t.TempDir()
	env := append(os.Environ(), "RAFTKV_BIN="+bin, "RAFTKV_CLUSTER_DIR="+dir,
		fmt.Sprint("HTTP_PORT=", base), fmt.Sprint("RAFT_PORT=", base+3), fmt.Sprint("MGMT_PORT=", base+6))
	script := func(name string) string {
		t.Helper()
		cmd := exec.Command("bash", "../../examples/cluster/"+name)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		stop := exec.Command("bash", "../../examples/cluster/stop.sh")
		stop.Env = env // the test's cluster directory
		stop.Run()
		if t.Failed() {
			for i := 1; i <= 3; i++ {
				data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
				t.Logf("n%d.log:\n%s", i, data)
			}
		}
	})
	if out := script("start.sh"); !strings.Contains(out, "members:       3") {
		t.Fatalf("start.sh:\n%s", out)
	}
	addr := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+i) }
	mustCLI(t, "put", "scripted", "yes", "--addr", addr(1))
	poll(t, 10*time.Second, "n3 reads the write", func() error {
		if r := cli(t, "get", "scripted", "--consistency", "stale", "--addr", addr(2)); r.stdout != "yes\n" {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})
	script("stop.sh")
	for i := range 3 {
		if _, err := doHTTP("GET", addr(i)+"/healthz", nil); err == nil {
			t.Errorf("n%d still answers after stop.sh", i+1)
		}
	}
	// Started, used and stopped gracefully: nothing went wrong, so nothing
	// is logged as an error (raft's complaints about the connections the
	// shutdown closes are expected; see host/hclog.go).
	for i := 1; i <= 3; i++ {
		data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
		if errs := grepLines(string(data), "level=ERROR"); errs != "" {
			t.Errorf("n%d logged errors in a clean start and stop:\n%s", i, errs)
		}
	}
	// Started again, the nodes come back with their data.
	script("start.sh")
	if out := mustCLI(t, "get", "scripted", "--addr", addr(2)); out != "yes\n" {
		t.Fatalf("after a restart: %q", out)
	}
	script("stop.sh")

	// Started on other Raft ports, the nodes serve their data (stale reads)
	// but cannot reach each other at the addresses their configuration
	// names: no leader, and start.sh says so with a failure.
	moved := consecutiveFreePorts(t, 3)
	cmd := exec.Command("bash", "../../examples/cluster/start.sh")
	cmd.Env = append(env, fmt.Sprint("RAFT_PORT=", moved), "LEADER_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no leader") {
		t.Fatalf("start.sh without a possible leader: %v\n%s", err, out)
	}
	script("stop.sh")
}

// consecutiveFreePorts returns the first of n consecutive free ports.
func consecutiveFreePorts(t *testing.T, n int) int {
	for range 50 {
		base := 20000 + rand.IntN(30000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

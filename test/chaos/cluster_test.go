package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The suite's addresses: nodes on 127.0.3.1 and up (RAFTKV_CHAOS_NET,
// such as "127.0.22.", picks another prefix, so that two runs can share a
// machine), clients dial from clientIP, so that a partition between nodes
// never cuts a client off.
var (
	ipPrefix = cmp.Or(os.Getenv("RAFTKV_CHAOS_NET"), "127.0.3.")
	clientIP = ipPrefix + "250"
)

const maxIPs = 200

// options configure a cluster.
type options struct {
	bin      string // the raftkv binary
	nodes    int    // initial voters
	logStore string // --log-store
	diskSize string // size of the tmpfs under the disk node's data directory
}

// cluster is a set of raftkv processes and the faults applied to them.
type cluster struct {
	t    testing.TB
	opts options
	dir  string
	fw   *firewall

	mu       sync.Mutex
	nodes    []*node // current members, in the order they joined
	gone     []*node // removed members (killed)
	next     int     // the next node number
	diskNode *node   // the member whose data directory is a tmpfs
	leaving  *node   // the member being removed: clients no longer use it
	diskMnt  string
}

// wasmCache is the compiled-plugin cache every node shares, kept across
// runs: compiling the KV plugin takes seconds, loading it milliseconds.
func wasmCache() string {
	d := filepath.Join(os.TempDir(), "raftkv-chaos-wasm-cache")
	os.MkdirAll(d, 0o700)
	return d
}

// nodeFlags are every node's flags beyond its addresses: snapshots every
// 1024 entries so that runs compact logs and send snapshots to nodes that
// come back behind.
func (c *cluster) nodeFlags() []string {
	return []string{"--plugin-cache-dir", wasmCache(), "--plugin-cache-max-bytes", "0", "--log-level", "info",
		"--log-store", c.opts.logStore, "--shutdown-timeout", "5s",
		"--snapshot-threshold", "1024", "--snapshot-interval", "3s", "--trailing-logs", "512"}
}

// startCluster starts opts.nodes voters: the first bootstraps, the others
// join through it. The last one's data directory is a tmpfs (the disk node).
func startCluster(t testing.TB, opts options) (*cluster, error) {
	// The nodes' data directories and logs: removed after a run that
	// passed, kept (the tmpfs's content copied out) after one that failed.
	dir, err := os.MkdirTemp("", "raftkv-chaos-")
	if err != nil {
		return nil, err
	}
	c := &cluster{t: t, opts: opts, dir: dir, next: 1}
	fw, err := newFirewall()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.fw = fw
	t.Cleanup(func() {
		c.stopAll()
		if err := c.fw.close(); err != nil {
			t.Errorf("removing the iptables chain: %v", err)
		}
		if c.diskMnt != "" {
			if t.Failed() {
				os.Remove(filepath.Join(c.diskMnt, "filler"))
				if err := os.CopyFS(filepath.Join(dir, "tmpfs-copy"), os.DirFS(c.diskMnt)); err != nil {
					t.Logf("copying the tmpfs: %v", err)
				}
			}
			if err := syscall.Unmount(c.diskMnt, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmounting %s: %v", c.diskMnt, err)
			}
		}
		if t.Failed() {
			t.Logf("the nodes' logs and data directories are kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	c.diskMnt = filepath.Join(c.dir, "tmpfs")
	if err := os.MkdirAll(c.diskMnt, 0o700); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", c.diskMnt, "tmpfs", 0, "size="+opts.diskSize+",mode=0700"); err != nil {
		c.diskMnt = ""
		return nil, fmt.Errorf("mounting a tmpfs for the full-disk fault (needs root): %w", err)
	}
	for i := range opts.nodes {
		var join *node
		if i > 0 {
			join = c.nodes[0]
		}
		dataDir := ""
		if i == opts.nodes-1 {
			dataDir = filepath.Join(c.diskMnt, "data")
		}
		n, err := c.addNode(join, dataDir)
		if err != nil {
			return nil, err
		}
		if i == opts.nodes-1 {
			c.diskNode = n
		}
		if i == 0 {
			if err := c.waitReady(90*time.Second, n); err != nil {
				return nil, err
			}
		}
	}
	return c, c.waitReady(3*time.Minute, c.members()...)
}

// addNode starts a new node that joins through join (bootstraps if nil), in
// dataDir ("" for one of its own), and makes it a member.
func (c *cluster) addNode(join *node, dataDir string) (*node, error) {
	c.mu.Lock()
	num := c.next
	c.next++
	c.mu.Unlock()
	id := fmt.Sprintf("n%d", num)
	ip := fmt.Sprintf("%s%d", ipPrefix, 1+(num-1)%maxIPs)
	if dataDir == "" {
		dataDir = filepath.Join(c.dir, id)
	}
	n, err := newNode(c.opts.bin, id, ip, dataDir, c.dir, c.nodeFlags())
	if err != nil {
		return nil, err
	}
	if join != nil {
		n.args = append(n.args, "--join", join.url())
	}
	if err := n.start(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n, nil
}

// members returns the current members.
func (c *cluster) members() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

// serving returns the members clients use: all but one being removed.
func (c *cluster) serving() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*node, 0, len(c.nodes))
	for _, n := range c.nodes {
		if n != c.leaving {
			out = append(out, n)
		}
	}
	return out
}

func (c *cluster) byID(id string) *node {
	for _, n := range c.members() {
		if n.id == id {
			return n
		}
	}
	return nil
}

// drop takes n out of the members (it was removed) and kills it.
func (c *cluster) drop(n *node) {
	c.mu.Lock()
	c.nodes = slices.DeleteFunc(c.nodes, func(m *node) bool { return m == n })
	c.gone = append(c.gone, n)
	c.mu.Unlock()
	n.kill()
}

// stopAll kills every process, paused or not.
func (c *cluster) stopAll() {
	c.mu.Lock()
	all := append(slices.Clone(c.nodes), c.gone...)
	c.mu.Unlock()
	for _, n := range all {
		n.kill()
	}
}

// poll calls f until it returns nil or timeout passes, and returns f's last
// error then.
func poll(timeout time.Duration, what string, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// errExited is a node that ended by itself: it crashed or refused to start.
type errExited struct{ n *node }

func (e errExited) Error() string {
	return fmt.Sprintf("%s exited by itself; the end of its log:\n%s", e.n.id, e.n.logTail(40))
}

// waitReady waits until each node answers /readyz 200 and sees every
// current member.
func (c *cluster) waitReady(timeout time.Duration, nodes ...*node) error {
	for _, n := range nodes {
		err := poll(timeout, n.id+" ready", func() error {
			if n.exitedUnasked() {
				return errExited{n}
			}
			if err := n.ready(); err != nil {
				return err
			}
			var v clusterView
			if err := n.get("/v1/cluster", &v); err != nil {
				return err
			}
			var want, got []string
			for _, m := range c.members() {
				want = append(want, m.id)
			}
			for _, m := range v.Members {
				got = append(got, m.ID)
			}
			sort.Strings(want)
			sort.Strings(got)
			if !slices.Equal(want, got) {
				return fmt.Errorf("%s sees members %v, want %v", n.id, got, want)
			}
			return nil
		})
		var exited errExited
		if errors.As(err, &exited) {
			return exited
		}
		if err != nil {
			return fmt.Errorf("%w; the end of its log:\n%s", err, n.logTail(30))
		}
	}
	return nil
}

// leader returns the member that a running member names as leader, once
// that member runs too.
func (c *cluster) leader(timeout time.Duration) (*node, error) {
	var l *node
	err := poll(timeout, "a leader", func() error {
		for _, n := range c.members() {
			if !n.running() || n.isPaused() {
				continue
			}
			var v clusterView
			if n.get("/v1/cluster", &v) != nil {
				continue
			}
			if m := c.byID(v.Leader); m != nil && m.running() {
				l = m
				return nil
			}
		}
		return errors.New("no running member names a running leader")
	})
	return l, err
}

// restart starts every member that is not running (killed by a fault).
func (c *cluster) restartDown() error {
	for _, n := range c.members() {
		if !n.running() {
			n.kill() // reaps a process that exited by itself
			if err := n.start(); err != nil {
				return err
			}
		}
	}
	return nil
}

// converged waits until every member reports the same applied index and
// the same plugins with the same state digests, and returns that state.
func (c *cluster) converged(timeout time.Duration) (string, error) {
	var same string
	err := poll(timeout, "every member's state digests equal", func() error {
		var lines []string
		var first string
		differ := false
		for _, n := range c.members() {
			var s status
			if err := n.get("/v1/status?digests=true", &s); err != nil {
				return err
			}
			d := s.digests()
			lines = append(lines, n.id+": "+d)
			if first == "" {
				first = d
			} else if d != first {
				differ = true
			}
		}
		if differ {
			return fmt.Errorf("digests differ:\n  %s", strings.Join(lines, "\n  "))
		}
		same = first
		return nil
	})
	return same, err
}

// removeMember removes n from the cluster through another member, then
// kills it. The removal's outcome can be unknown (a leader change): then the
// membership is read back until n is gone.
func (c *cluster) removeMember(n *node) error {
	c.mu.Lock()
	c.leaving = n
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.leaving = nil
		c.mu.Unlock()
	}()
	l, err := c.leader(60 * time.Second)
	if err != nil {
		return err
	}
	via := l
	if via == n { // a member does not hear its own removal's answer
		for _, m := range c.members() {
			if m != n && m.running() {
				via = m
				break
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	a, err := do(ctx, adminClient, "DELETE", via.url()+"/v1/cluster/members/"+n.id, nil)
	cancel()
	if err == nil && a.status != 200 && a.status != 504 && a.status != 503 {
		return fmt.Errorf("removing %s through %s: %s", n.id, via.id, a)
	}
	asked := time.Now()
	err = poll(2*time.Minute, n.id+" removed", func() error {
		l, err := c.leader(10 * time.Second)
		if err != nil {
			return err
		}
		var v clusterView
		if err := l.get("/v1/cluster", &v); err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.ID == n.id {
				// Not removed (a 503 before it was proposed, or a leader
				// change): ask again now and then.
				if time.Since(asked) > 5*time.Second {
					asked = time.Now()
					do(context.Background(), adminClient, "DELETE", l.url()+"/v1/cluster/members/"+n.id, nil)
				}
				return fmt.Errorf("%s still a member as %s sees it", n.id, l.id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.drop(n)
	return nil
}

// panics returns, for every log line of every node (members and removed
// ones, every start) that reports a panic, that line and the ones after it.
func (c *cluster) panics() []string {
	c.mu.Lock()
	all := append(slices.Clone(c.nodes), c.gone...)
	c.mu.Unlock()
	var out, first []string // first: the panics themselves, with their stacks
	for _, n := range all {
		for start := 1; start <= n.starts; start++ {
			data, err := os.ReadFile(n.logFile(start))
			if err != nil {
				continue
			}
			lines := strings.Split(string(data), "\n")
			for i, l := range lines {
				if !strings.Contains(l, "panic") {
					continue
				}
				end := min(len(lines), i+40)
				p := fmt.Sprintf("%s, start %d:\n%s", n.id, start, strings.Join(lines[i:end], "\n"))
				if strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "panic:") {
					first = append(first, p)
				} else {
					out = append(out, p)
				}
			}
		}
	}
	return append(first, out...)
}

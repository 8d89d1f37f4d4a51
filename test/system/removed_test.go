package system_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestServeRemovedNodeRestarted: a node removed from the cluster and
// restarted with its old flags on its old data dir takes no part (no
// leader contacts it). It says so: in its log at start, on /readyz, in
// 'raftkv status' and in the 503 no_leader it answers. (The old code
// answered /readyz "no known leader" and no_leader, and logged nothing.)
func TestServeRemovedNodeRestarted(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, []string{"n1", "n2", "n3"}, []string{"127.0.22.1", "127.0.22.2", "127.0.22.3"})
	n3 := c.byID("n3")
	l := c.leader(t)
	if l == n3 {
		t.Skip("n3 leads; the removal of a leader is another test") // startCluster bootstraps n1
	}
	mustCLI(t, "remove", "n3", "--addr", l.url())
	// n3 learns its removal from the configuration entry the leader sends
	// it before it stops replicating to it.
	poll(t, 30*time.Second, "n3 to know its removal", func() error {
		a, err := n3.cluster()
		if err != nil {
			return err
		}
		for _, m := range a.Members {
			if m.ID == "n3" {
				return fmt.Errorf("n3 still lists itself: %+v", a.Members)
			}
		}
		return nil
	})
	if err := n3.terminate(); err != nil {
		t.Fatalf("n3: %v", err)
	}
	n3.start() // the same flags, the same data dir

	const want = "this node (n3) was removed from the cluster"
	poll(t, 60*time.Second, "n3 saying it was removed", func() error {
		r, err := doHTTP("GET", n3.url()+"/readyz", nil)
		if err != nil {
			return err
		}
		if r.status != 503 || !strings.Contains(r.body, want) {
			return fmt.Errorf("/readyz: %d %s", r.status, r.body)
		}
		return nil
	})
	r, err := doHTTP("PUT", n3.url()+"/v1/kv/x", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 503 || !strings.Contains(r.body, "no_leader") || !strings.Contains(r.body, want) {
		t.Errorf("a write to the removed node: %d %s; want 503 no_leader saying it was removed", r.status, r.body)
	}
	// Every line of its status is its own: the CLI does not fail over to
	// the members it lists, which are ready and have a leader (it did:
	// "leader: (none)" from n3, then "ready: yes" and the digest check from
	// the leader).
	out := mustCLI(t, "status", "--addr", n3.url())
	if !strings.Contains(out, want) || !strings.Contains(out, "ready:         no") || !strings.Contains(out, "leader:        (none)") {
		t.Errorf("raftkv status of the removed node:\n%s", out)
	}
	// Its list of members is its last view: 'raftkv members' says so (it
	// listed them silently).
	if r := cli(t, "members", "--addr", n3.url()); r.code != 0 || !strings.Contains(r.stderr, want) ||
		!strings.Contains(r.stderr, "the members below are n3's last view, out of date") {
		t.Errorf("raftkv members asked of the removed node: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if log := n3.log(n3.starts); !strings.Contains(log, want) {
		t.Errorf("the removed node's log does not say it was removed:\n%s", log)
	}
}

// TestStatusOfRemovedLeaderIsItsOwn: a leader removed from the cluster
// while it runs steps down, knows no leader, and is not ready. 'raftkv
// status' asked there reports that node's answers only. It failed over to
// the members the node still lists: "leader: (none)" came from the removed
// node, then "ready: yes" and the digest check from the new leader (attack
// round 3).
func TestStatusOfRemovedLeaderIsItsOwn(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, []string{"n1", "n2", "n3"}, []string{"127.0.26.1", "127.0.26.2", "127.0.26.3"})
	old := c.leader(t)
	var other *proc
	for _, p := range c {
		if p != old {
			other = p
			break
		}
	}
	mustCLI(t, "remove", old.id, "--addr", other.url())
	poll(t, 30*time.Second, "a new leader", func() error {
		r, err := doHTTP("GET", other.url()+"/readyz", nil)
		if err == nil && r.status != 200 {
			err = fmt.Errorf("%s /readyz: %d %s", other.id, r.status, r.body)
		}
		return err
	})
	poll(t, 30*time.Second, "the removed leader to step down", func() error {
		r, err := doHTTP("GET", old.url()+"/readyz", nil)
		if err == nil && r.status == 200 {
			err = fmt.Errorf("%s /readyz: still ready", old.id)
		}
		return err
	})
	out := mustCLI(t, "status", "--addr", old.url())
	if !strings.Contains(out, "node:          "+old.id) || !strings.Contains(out, "ready:         no") {
		t.Errorf("raftkv status of the removed leader %s:\n%s", old.id, out)
	}
}

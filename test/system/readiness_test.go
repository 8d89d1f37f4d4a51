package system_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeReadinessRestart: a follower restarted behind the cluster (it
// was down for a few hundred writes) answers /readyz 200 only once it has
// applied what the leader had committed before it started, and from then on
// without flapping back; until then its reads answer 503 (no_leader,
// not_ready) or, for a stale read, the state it has, never 404 'unknown
// plugin "kv"'. The old code said 200 on a restarted node whose commit and
// applied indexes were both still 0, then 503, then 200 again, and answered
// reads 404 during start-up.
func TestServeReadinessRestart(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, []string{"n1", "n2", "n3"}, []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"})
	l := c.leader(t)
	f := c.followers(t)[0]
	mustHTTP(t, 200, "PUT", l.url()+"/v1/kv/first", []byte("1"))
	c.converged(t)
	if err := f.terminate(); err != nil {
		t.Fatal(err)
	}
	const writes = 300
	for i := range writes {
		// Any running node takes the write; a leadership change on a loaded
		// machine is retried (a write is idempotent here).
		poll(t, 30*time.Second, "a write", func() error {
			r, err := doHTTP("PUT", fmt.Sprintf("%s/v1/kv/k%03d", l.url(), i), []byte("v"))
			if err == nil && r.status != 200 {
				err = fmt.Errorf("%d %s", r.status, r.body)
			}
			if err != nil {
				l = c.leader(t)
			}
			return err
		})
	}
	l = c.leader(t)
	la, err := l.cluster()
	if err != nil {
		t.Fatal(err)
	}
	commitBefore := la.CommitIndex

	f.start()
	var (
		readyAt    time.Time
		seen       []string // /readyz answers in order, runs collapsed
		firstReady clusterAnswer
	)
	record := func(s string) {
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !f.running() {
			t.Fatalf("the restarted follower exited:\n%s", f.log(f.starts))
		}
		r, err := doHTTP("GET", f.url()+"/readyz", nil)
		if err != nil {
			record("down")
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if r.status == http.StatusOK {
			record("200")
			if readyAt.IsZero() {
				readyAt = time.Now()
				if firstReady, err = f.cluster(); err != nil {
					t.Fatal(err)
				}
				// Everything written before it started is there.
				g, err := doHTTP("GET", fmt.Sprintf("%s/v1/kv/k%03d?consistency=stale", f.url(), writes-1), nil)
				if err != nil || g.status != 200 {
					t.Fatalf("stale read of the last write on a node that says it is ready: %v %d %s", err, g.status, g.body)
				}
			}
			if time.Since(readyAt) > 3*time.Second {
				break
			}
		} else {
			code := r.body
			if i := strings.Index(code, `"code":"`); i >= 0 {
				code = code[i+8:]
				code = code[:strings.IndexByte(code, '"')]
			}
			record(fmt.Sprintf("%d %s", r.status, code))
			// Once ready it stays so: only losing the leader (a loaded
			// machine can delay heartbeats past twice the heartbeat
			// timeout) may take it back, never catching up again.
			if !readyAt.IsZero() && !strings.Contains(r.body, "no contact with the leader") && code != "no_leader" {
				t.Fatalf("/readyz went back to %d %s %v after it said 200; answers: %v", r.status, r.body, time.Since(readyAt), seen)
			}
		}
		// A stale read during start-up: an answer from the node's state,
		// or 503, never "unknown plugin".
		if g, err := doHTTP("GET", f.url()+"/v1/kv/first?consistency=stale", nil); err == nil {
			if g.status == 404 && strings.Contains(g.body, "plugin") || g.status != 200 && g.status != 503 {
				t.Fatalf("stale read during start-up: %d %s (readyz answers so far %v)", g.status, g.body, seen)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if readyAt.IsZero() {
		t.Fatalf("never ready; answers: %v", seen)
	}
	if firstReady.AppliedIndex < commitBefore {
		t.Fatalf("ready at applied index %d, before the leader's commit index %d at its start; answers %v", firstReady.AppliedIndex, commitBefore, seen)
	}
	t.Logf("/readyz answers: %v; ready at applied index %d (leader's commit index at its start: %d)", seen, firstReady.AppliedIndex, commitBefore)
}

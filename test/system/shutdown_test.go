package system_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestServeSIGTERMFailStoppedLeader: SIGTERM ends a fail-stopped leader's
// process promptly. The node is a single-node cluster; an upgrade of the
// slow test plugin, deployed trusted (unmetered: the stand-in for a host
// bug), whose migration runs past --plugin-call-timeout stops it applying
// the log. Restarted, it becomes leader and waits for the
// barrier of its term while its state machine stops at that entry again:
// SIGTERM must end it then too. (The old code passes this one: its
// fail-stop releases the barrier. It guards the path.)
func TestServeSIGTERMFailStoppedLeader(t *testing.T) {
	bin := buildBinary(t)
	// Version 2 of the slow test plugin spins in its migrate entry point
	// past the call limit: the upgrade's log entry stops the node.
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1.wasm"), filepath.Join(dir, "v2.wasm")
	for path, flags := range map[string][]string{
		v1: {"-X main.version=1"},
		v2: {"-X main.version=2", "-X main.migrateSpin=2500000000"}, // some 100 s
	} {
		if err := os.WriteFile(path, wasmbuild.Build(t, "../../host/testdata/slow", flags...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := newProc(t, bin, "n1", "127.0.0.1", "")
	p.args = append(p.args, "--plugin-call-timeout", "3s", "--shutdown-timeout", "5s")
	p.start()
	waitServing(t, p)
	// Trusted: no fuel, so the spin reaches the wall-clock limit (a host
	// bug's stand-in).
	mustCLI(t, "plugin", "deploy", "slow", v1, "--addr", p.url(), "--trusted", "--timeout", "3m")
	// Compiling and migrating take long on a loaded machine: a generous
	// --timeout, so the answer is the node's, not the CLI giving up.
	if r := cli(t, "plugin", "deploy", "slow", v2, "--upgrade", "*", "--trusted", "--addr", p.url(), "--timeout", "3m"); r.code == 0 || !strings.Contains(r.stderr, "stopped") {
		t.Fatalf("an upgrade whose migration passes the call limit: exit %d, %s", r.code, r.stderr)
	}
	stopped := func() error {
		r, err := doHTTP("GET", p.url()+"/healthz", nil)
		if err != nil {
			return err
		}
		if r.status != 503 || !strings.Contains(r.body, "stopped") {
			return errorf("/healthz: %d %s", r.status, r.body)
		}
		return nil
	}
	poll(t, 30*time.Second, "fail-stop", stopped)
	for round := 1; round <= 2; round++ {
		start := time.Now()
		if err := p.terminate(); err != nil {
			t.Fatalf("round %d: SIGTERM to a fail-stopped leader: %v\n%s", round, err, p.log(p.starts))
		}
		t.Logf("round %d: exited %v after SIGTERM", round, time.Since(start).Round(time.Millisecond))
		if round == 2 {
			break
		}
		// Restarted, it replays the entry and fail-stops again as the
		// leader whose barrier is pending.
		p.start()
		poll(t, 60*time.Second, "fail-stop after the restart", stopped)
	}
}

// TestServeSIGTERMStoppedPeers: SIGTERM ends a leader's process within
// --shutdown-timeout while the other members are SIGSTOPped (to it, they
// hang: connections open, nothing answered) and a write waits for them; a
// second signal ends it at once. The old code took ten seconds whatever
// --shutdown-timeout said, and ignored a second signal.
func TestServeSIGTERMStoppedPeers(t *testing.T) {
	bin := buildBinary(t)
	for _, second := range []bool{false, true} {
		t.Run(map[bool]string{false: "one signal", true: "two signals"}[second], func(t *testing.T) {
			timeout := "2s"
			if second {
				timeout = "1m" // only the second signal can end it in time
			}
			var c e2eCluster
			for i, id := range []string{"n1", "n2", "n3"} {
				join := ""
				if i > 0 {
					join = c[0].url()
				}
				p := newProc(t, bin, id, "127.0.0.1", join)
				p.args = append(p.args, "--shutdown-timeout", timeout)
				p.start()
				c = append(c, p)
			}
			c.waitReady(t, 3)
			l := c.leader(t)
			mustHTTP(t, 200, "PUT", l.url()+"/v1/kv/k", []byte("v"))
			var paused []*proc
			t.Cleanup(func() {
				for _, p := range paused {
					p.cmd.Process.Signal(syscall.SIGCONT)
				}
			})
			for _, p := range c {
				if p != l {
					if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
						t.Fatal(err)
					}
					paused = append(paused, p)
				}
			}
			// A write that cannot commit, in flight during the shutdown.
			writing := make(chan struct{})
			go func() {
				close(writing)
				doHTTP("PUT", l.url()+"/v1/kv/k", []byte("w"))
			}()
			<-writing
			start := time.Now()
			l.cmd.Process.Signal(syscall.SIGTERM)
			if second {
				// Once the first signal's shutdown is under way.
				poll(t, 10*time.Second, "the shutdown after the first SIGTERM", func() error {
					if !strings.Contains(l.log(l.starts), "shutting down") {
						return errors.New(`no "shutting down" in the log`)
					}
					return nil
				})
				l.cmd.Process.Signal(syscall.SIGTERM)
			}
			select {
			case <-l.exited:
			case <-time.After(6 * time.Second):
				t.Fatalf("still running %v after SIGTERM (--shutdown-timeout %s, second signal %v)", time.Since(start).Round(time.Millisecond), timeout, second)
			}
			t.Logf("exited %v after SIGTERM: %v", time.Since(start).Round(time.Millisecond), l.cmd.ProcessState)
		})
	}
}

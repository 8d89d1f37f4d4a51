package system_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests run the built binary: what they check (an exit, its message,
// which ports a process opened) lives in the process.

// TestServeDataDirInUse: a second node on a running node's data directory
// exits at once, naming the first one's pid, and never opens its HTTP port
// (the old code opened it, then hung forever on raft-wal's lock, deaf to
// SIGTERM).
func TestServeDataDirInUse(t *testing.T) {
	bin := buildBinary(t)
	first := newProc(t, bin, "n1", "127.0.0.1", "")
	first.start()
	waitServing(t, first)

	dataDir := filepath.Join(first.logDir, "data")
	httpAddr := freeAddr(t, "127.0.0.1")
	var opened bool
	code, out := runUntilExit(t, 15*time.Second, func() {
		if c, err := net.DialTimeout("tcp", httpAddr, 50*time.Millisecond); err == nil {
			c.Close()
			opened = true
		}
	}, bin, "serve", "--node-id", "n1", "--data-dir", dataDir, "--http-addr", httpAddr,
		"--mgmt-addr", freeAddr(t, "127.0.0.1"), "--raft-addr", freeAddr(t, "127.0.0.1"))
	if code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, out)
	}
	want := fmt.Sprintf("in use by pid %d", first.cmd.Process.Pid)
	if !strings.Contains(out, want) || !strings.Contains(out, dataDir) {
		t.Fatalf("output %q: want it to name %s and say %q", out, dataDir, want)
	}
	if opened {
		t.Fatal("the second process opened its HTTP port before it failed on the lock")
	}
	// The first node is unharmed, and the lock is free once it is gone.
	waitServing(t, first)
	if err := first.terminate(); err != nil {
		t.Fatal(err)
	}
	first.start()
	waitServing(t, first)
}

// TestServeNodeIDChange: a data directory restarted under another --node-id
// is refused with how to rename a node properly (the old code started it,
// "ready", while the cluster still called it by the old ID).
func TestServeNodeIDChange(t *testing.T) {
	bin := buildBinary(t)
	p := newProc(t, bin, "n1", "127.0.0.1", "")
	p.start()
	waitServing(t, p)
	if err := p.terminate(); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(p.logDir, "data")
	code, out := runUntilExit(t, 15*time.Second, nil, bin, "serve", "--node-id", "n9", "--data-dir", dataDir,
		"--http-addr", p.http, "--mgmt-addr", p.mgmt, "--raft-addr", p.raft)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, out)
	}
	for _, want := range []string{`created for node "n1"`, `--node-id "n9"`, "raftkv remove n1", "empty data dir", "--join"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q: want %q", out, want)
		}
	}
	// Under its own ID it starts as before.
	p.start()
	waitServing(t, p)
}

// TestServeJoinRaftPort: --join pointed at a member's Raft (SSH) port fails
// at once and says so (the old code retried forever on "malformed HTTP
// response").
func TestServeJoinRaftPort(t *testing.T) {
	bin := buildBinary(t)
	first := newProc(t, bin, "n1", "127.0.0.1", "")
	first.start()
	waitServing(t, first)
	for _, join := range []string{first.raft, "https://" + first.raft} {
		code, out := runUntilExit(t, 20*time.Second, nil, bin, "serve", "--node-id", "n2",
			"--data-dir", filepath.Join(t.TempDir(), "data"), "--join", join, "--http-addr", freeAddr(t, "127.0.0.1"),
			"--mgmt-addr", freeAddr(t, "127.0.0.1"), "--raft-addr", freeAddr(t, "127.0.0.1"))
		if code != 1 || !strings.Contains(out, "Raft (SSH) port") {
			t.Fatalf("--join %s: exit %d, output:\n%s\nwant exit 1 saying it is the Raft port", join, code, out)
		}
	}
}

// TestServeFormerMemberNotBootstrapped: a member's data dir whose Raft log
// was moved away (the recovery from a diverged log, docs/operations.md) is
// not bootstrapped into a new, empty, ready cluster of its own when started
// without --join: serve refuses and says how to rejoin or, deliberately,
// start anew. (It bootstrapped silently: a split brain, found recovering an
// interrupted restore.)
func TestServeFormerMemberNotBootstrapped(t *testing.T) {
	bin := buildBinary(t)
	p := newProc(t, bin, "n1", "127.0.0.1", "")
	p.start()
	waitServing(t, p)
	keyDir := filepath.Join(t.TempDir(), "n2")
	pub := filepath.Join(t.TempDir(), "n2.pub")
	if err := os.WriteFile(pub, []byte(mustCLI(t, "key", "--data-dir", keyDir, "--node-id", "n2")), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "trust", "--file", pub, "--addr", p.url())
	if err := p.terminate(); err != nil {
		t.Fatal(err)
	}
	dataDir := p.dataDir()
	aside := t.TempDir()
	for _, f := range []string{"raft.db", "snapshots"} {
		if err := os.Rename(filepath.Join(dataDir, f), filepath.Join(aside, f)); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"serve", "--node-id", "n1", "--data-dir", dataDir, "--http-addr", p.http, "--mgmt-addr", p.mgmt, "--raft-addr", p.raft}
	code, out := runUntilExit(t, 15*time.Second, nil, append([]string{bin}, args...)...)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, out)
	}
	for _, want := range []string{"no Raft log", "n2", "--join", "--bootstrap=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q: want %q", out, want)
		}
	}
	// Asked for explicitly, a new cluster it is.
	p.args = append(p.args, "--bootstrap=true")
	p.start()
	waitServing(t, p)
}

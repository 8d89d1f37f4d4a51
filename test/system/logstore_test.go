package system_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeDamagedLog: a node whose Raft log was damaged on disk exits with
// an error that names the log and says how to bring the node back, not with
// a panic trace (raft.NewRaft panics on an entry it cannot read; the old
// code let it).
func TestServeDamagedLog(t *testing.T) {
	bin := buildBinary(t)
	// BoltDB, the default. (A raft-wal tail segment full of junk reads as a
	// torn write and is dropped by raft-wal itself; host/logstore's
	// TestDamaged covers its sealed segments.)
	for _, tc := range []struct{ kind, file string }{
		{"bolt", "raft.db"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			p := newProc(t, bin, "n1", "127.0.0.1", "")
			p.args = append(p.args, "--log-store", tc.kind)
			p.start()
			waitServing(t, p)
			for i := range 20 {
				mustHTTP(t, 200, "PUT", p.url()+"/v1/kv/key-"+string(rune('a'+i)), []byte(strings.Repeat("v", 500)))
			}
			if err := p.terminate(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(p.logDir, "data", tc.file)
			damage(t, path)
			code, out := runUntilExit(t, 30*time.Second, nil, p.args...)
			if code != 1 {
				t.Fatalf("exit code %d, want 1; output:\n%s", code, out)
			}
			for _, want := range []string{path, "cannot be read", "raftkv remove", "--join", "raftkv restore"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic(") {
				t.Errorf("output has a panic trace:\n%s", out)
			}
		})
	}
}

// damage overwrites part of a BoltDB file, past its two meta pages, with
// junk.
func damage(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := []byte(strings.Repeat("\xff", 32<<10))
	if _, err := f.WriteAt(junk, 2*4096); err != nil {
		t.Fatal(err)
	}
}

// runUntilExit runs the binary with args and waits up to limit for it to
// exit; onTick runs every few milliseconds meanwhile. It returns the exit
// code and the combined output; a process still running at limit is killed
// and fails the test.
func runUntilExit(t *testing.T, limit time.Duration, onTick func(), args ...string) (int, string) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "NODE_ID=", "BOOTSTRAP=", "JOIN_ADDR=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			data, _ := os.ReadFile(out.Name())
			return cmd.ProcessState.ExitCode(), string(data)
		case <-deadline:
			cmd.Process.Kill()
			<-done
			data, _ := os.ReadFile(out.Name())
			t.Fatalf("%s: still running after %v; output:\n%s", strings.Join(args[1:], " "), limit, data)
		case <-tick.C:
			if onTick != nil {
				onTick()
			}
		}
	}
}

// waitServing waits until p serves the KV plugin and knows a leader.
func waitServing(t *testing.T, p *proc) {
	t.Helper()
	c := e2eCluster{p}
	c.waitReady(t, 1)
}

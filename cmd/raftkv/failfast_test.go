package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve refuses bad flags before it creates anything; the tests that run the
// built binary's serve and watch it exit are in test/system/failfast_test.go.

// TestServeJoinValidated: a --join value that is not a usable address is
// refused before anything is created, and a missing port is not taken to
// mean :80.
func TestServeJoinValidated(t *testing.T) {
	for _, join := range []string{"127.0.0.1", "http://127.0.0.1", "http://[::1", "ftp://127.0.0.1:6000", "127.0.0.1:99999", "http://127.0.0.1:6000/v1/x"} {
		dataDir := filepath.Join(t.TempDir(), "data")
		r := cli("serve", "--node-id", "n2", "--data-dir", dataDir, "--join", join,
			"--http-addr", freeAddr(t, "127.0.0.1"), "--mgmt-addr", freeAddr(t, "127.0.0.1"), "--raft-addr", freeAddr(t, "127.0.0.1"))
		if r.code != exitUsage || !strings.Contains(r.stderr, "--join") {
			t.Errorf("--join %q: exit %d, stderr %q; want a usage error about --join", join, r.code, r.stderr)
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--join %q: the data dir was created (%v)", join, err)
		}
	}
	if r := cli("serve", "--node-id", "n2", "--data-dir", filepath.Join(t.TempDir(), "d"), "--join", "127.0.0.1"); !strings.Contains(r.stderr, "no port") {
		t.Errorf("--join without a port: %q, want it to say there is no port", r.stderr)
	}
}

// TestServeRaftConfigValidated: Raft settings hashicorp/raft would refuse
// (an election timeout shorter than the heartbeat's, more than 1024 entries
// per AppendEntries) are refused with raft's reason before the data dir is
// created; they used to pass raftkv's checks and fail after the log was open.
func TestServeRaftConfigValidated(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--max-append-entries", "2000"}, "MaxAppendEntries"},
		{[]string{"--heartbeat-timeout", "1s", "--election-timeout", "200ms", "--leader-lease-timeout", "100ms"}, "must be equal or greater than Heartbeat Timeout"},
		// The built-in kv is deployed with 512 pages: the node answered 503
		// forever, retrying the deploy.
		{[]string{"--plugin-memory-pages", "100"}, "(serve --plugin-memory-pages) is 100: the built-in \"kv\" plugin is deployed with a memory cap of 512 pages"},
	} {
		dataDir := filepath.Join(t.TempDir(), "data")
		args := append([]string{"serve", "--node-id", "n1", "--data-dir", dataDir, "--bootstrap",
			"--http-addr", freeAddr(t, "127.0.0.1"), "--mgmt-addr", freeAddr(t, "127.0.0.1"), "--raft-addr", freeAddr(t, "127.0.0.1")}, tc.flags...)
		r := cli(args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.flags, r.code, r.stderr, tc.want)
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: the data dir was created (%v)", tc.flags, err)
		}
	}
}

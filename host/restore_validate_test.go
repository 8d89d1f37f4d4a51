package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestRestoreRefusesInvalidModule: a backup whose checksums hold but whose
// module a deploy would refuse (a WASI command, a module whose initialiser
// fails, limits past the node's memory cap) is refused by the leader with
// ErrInvalid before anything is replaced: the leader keeps leading and
// serving, with its state and plugin as they were. (Raft panics when the
// state machine fails a user restore: this is what keeps the leader up.)
// The unmodified backup then restores.
func TestRestoreRefusesInvalidModule(t *testing.T) {
	// One node: on this loaded machine a 3-node cluster's leadership flaps, which
	// is not what this test is about (Restore runs on the leader alone).
	c := cluster.Start(t, cluster.Options{Nodes: 1})
	l := c.Leader()
	hostile := wasmbuild.Build(t, "./plugin/testdata/hostile")
	info := deploy(t, l.Node, "h", hostile)
	mustSet(t, l.Node, "a", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var backup bytes.Buffer
	if _, err := l.Node.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	mustSet(t, l.Node, "a", "2") // after the backup

	big := plugin.DefaultLimits()
	big.MemoryPages = 60000
	for _, tc := range []struct {
		name string
		wasm []byte
		lim  *plugin.Limits
		want string
	}{
		{"a WASI command", wasmbuild.BuildCommand(t, "./plugin/testdata/nodescriber"), nil, "c-shared"},
		{"a failing initialiser", wasmbuild.Build(t, "./plugin/testdata/hostile", "-X main.initLoop=yes"), nil, "_initialize"},
		{"memory past the node's cap", hostile, &big, "memory_pages"},
	} {
		bad := host.RewriteBackupPlugin(t, backup.Bytes(), "h", tc.wasm, tc.lim)
		err := l.Node.Restore(ctx, bytes.NewReader(bad))
		if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("restore of a backup with %s: %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
		if !l.Node.IsLeader() {
			t.Fatalf("after the refused restore of %s, %s no longer leads", tc.name, l.ID)
		}
		mustSet(t, l.Node, "after-"+strings.ReplaceAll(tc.name, " ", "-"), "1")
		if got := pluginHash(l.Node, "h"); got != info.Hash {
			t.Fatalf("after the refused restore of %s, h runs %s", tc.name, got)
		}
	}
	if got, _ := get(t, l.Node, "a", host.Leader); got != "2" {
		t.Fatalf("a = %q after refused restores, want 2", got)
	}
	if err := l.Node.Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatalf("restore of the backup as taken: %v", err)
	}
	cluster.Poll(t, time.Minute, func() bool {
		got, err := get(t, c.Leader().Node, "a", host.Leader)
		return err == nil && got == "1"
	}, "a never became 1 after the restore")
}

// trustedOf reports whether n runs the named plugin trusted (false if it
// does not run it).
func trustedOf(n *host.Node, name string) bool {
	for _, p := range n.Plugins() {
		if p.Name == name {
			return p.Limits.Trusted
		}
	}
	return false
}

// TestTrustedKeptByBackupAndRestart: a plugin deployed trusted is trusted
// again after a restore of a backup taken then (though it was deployed
// metered since), and after the node restarts (from its snapshot and log).
func TestTrustedKeptByBackupAndRestart(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 1, Configure: func(cfg *host.Config) {
		cfg.SnapshotThreshold, cfg.SnapshotInterval = 4, 50*time.Millisecond
	}})
	l := c.Leader()
	hostile := wasmbuild.Build(t, "./plugin/testdata/hostile")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	info, err := l.Node.DeployPluginWith(ctx, "h", hostile, host.DeployOptions{Trusted: true, Create: true})
	if err != nil || !info.Limits.Trusted {
		t.Fatalf("trusted deploy: %+v %v", info.Limits, err)
	}
	var backup bytes.Buffer
	if _, err := l.Node.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Node.DeployPluginWith(ctx, "h", hostile, host.DeployOptions{IfHash: info.Hash}); err != nil || trustedOf(l.Node, "h") {
		t.Fatalf("deployed again without trust: trusted %v, %v", trustedOf(l.Node, "h"), err)
	}
	if err := l.Node.Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	cluster.Poll(t, time.Minute, func() bool { return trustedOf(c.Leader().Node, "h") }, "h is not trusted after the restore of a backup taken while it was")
	for i := range 5 {
		mustSet(t, c.Leader().Node, fmt.Sprintf("k%d", i), "v") // a snapshot past the restore
	}
	c.Restart(l)
	cluster.Poll(t, time.Minute, func() bool { return l.Node != nil && trustedOf(l.Node, "h") }, "h is not trusted after a restart")
}

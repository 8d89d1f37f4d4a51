package host_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// TestKeptStateAndPluginListConsistency: a plugin removed without
// drop_state keeps its state, which every node lists as a kept state with
// its size (the host's own namespaces are not listed); a removal with drop_state sent through a follower then deletes
// it on every node. A leader or linearizable read of the plugin table is
// refused by a follower (ErrNotLeader) and answered by the leader, which
// shows a deploy that returned; a stale one is answered locally.
func TestKeptStateAndPluginListConsistency(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	ctx := context.Background()
	// A write with an idempotency key fills the host's .sessions namespace.
	if _, err := c.Leader().Node.ApplyOnce(ctx, host.DefaultPluginName, "key-1", kvstore.Command{Op: kvstore.OpSet, Key: []byte("a"), Value: []byte("b")}.AppendMsgpack(nil)); err != nil {
		t.Fatal(err)
	}
	deploy(t, c.Followers()[0].Node, "kv2", kvwasm.Module)
	// On a loaded machine leadership may move: ask whoever leads now.
	listed := func(level host.Consistency) (plugins []host.PluginInfo, kept []host.KeptState) {
		t.Helper()
		cluster.Poll(t, 60*time.Second, func() bool {
			var err error
			plugins, kept, err = c.Leader().Node.PluginsAt(ctx, level)
			return err == nil
		}, "no %s list from the leader", level)
		return plugins, kept
	}
	if plugins, _ := listed(host.Linearizable); len(plugins) != 2 || plugins[1].Name != "kv2" {
		t.Fatalf("linearizable list on the leader after the deploy: %+v", plugins)
	}
	f := c.Followers()[0]
	for _, level := range []host.Consistency{host.Leader, host.Linearizable} {
		// The follower asks the leader (it may have changed meanwhile).
		var plugins []host.PluginInfo
		cluster.Poll(t, 60*time.Second, func() bool {
			var err error
			plugins, _, err = f.Node.PluginsAt(ctx, level)
			return err == nil || !(errors.Is(err, host.ErrNoLeader) || errors.Is(err, host.ErrNotLeader))
		}, "no %s list from the follower", level)
		if len(plugins) != 2 || plugins[1].Name != "kv2" {
			t.Errorf("%s list on a follower after the deploy: %+v", level, plugins)
		}
	}
	if _, _, err := f.Node.PluginsAt(ctx, host.Stale); err != nil {
		t.Errorf("stale list on a follower: %v", err)
	}

	set := kvstore.Command{Op: kvstore.OpSet, Key: []byte("key"), Value: []byte("value")}.AppendMsgpack(nil)
	if r, err := f.Node.Apply(ctx, "kv2", set); err != nil || !r.OK() {
		t.Fatalf("SET: %v %v", r, err)
	}
	if err := f.Node.RemovePlugin(ctx, "kv2", false); err != nil {
		t.Fatal(err)
	}
	want := host.KeptState{Name: "kv2", Keys: 1, Bytes: int64(len("key") + len("value"))}
	cluster.Poll(t, 30*time.Second, func() bool {
		for _, m := range c.Members {
			if k := m.Node.KeptStates(); len(k) != 1 || k[0] != want || pluginHash(m.Node, "kv2") != "" {
				return false
			}
		}
		return true
	}, "every node lists kv2's kept state %+v", want)
	if _, kept := listed(host.Linearizable); len(kept) != 1 || kept[0] != want {
		t.Fatalf("linearizable list: kept %+v", kept)
	}

	// Dropping the kept state, through a follower and the log.
	if err := f.Node.RemovePlugin(ctx, "kv2", true); err != nil {
		t.Fatalf("dropping the kept state: %v", err)
	}
	cluster.Poll(t, 30*time.Second, func() bool {
		for _, m := range c.Members {
			if len(m.Node.KeptStates()) != 0 {
				return false
			}
		}
		return true
	}, "a node still lists kv2's state")
	if err := f.Node.RemovePlugin(ctx, "kv2", true); !errors.Is(err, host.ErrNotFound) {
		t.Fatalf("dropping it again: %v, want ErrNotFound", err)
	}
	if err := f.Node.RemovePlugin(ctx, "nothing", false); !errors.Is(err, host.ErrNotFound) {
		t.Fatalf("removing an unknown plugin: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// Test_main runs the example against a single in-process node.
func Test_main(t *testing.T) {
	cfg := host.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Bootstrap = "n1", t.TempDir(), "127.0.0.1:0", true
	cfg.DefaultPlugin = kvwasm.Module
	cfg.PluginCacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache") // shared with cmd/raftkv's and test/system's tests
	cfg.PluginCacheMaxBytes = 0
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	// The advertise address must be dialable; a single node never dials it.
	cfg.AdvertiseAddr = "127.0.0.1:1"
	node, err := host.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	srv := httptest.NewServer(httpapi.New(node, httpapi.DefaultConfig()).Handler())
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Endpoints: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Wait for the default plugin, which the first leader deploys.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.Get(ctx, "probe")
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status == 404 && strings.Contains(ae.Message, "key not found") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the KV plugin is not serving: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var out bytes.Buffer
	if err := run(ctx, &out, c); err != nil {
		t.Fatal(err)
	}
	want := `insert-val SET hello: ok
get-val hello: world
insert-val DELETE hello: ok
get-val hello after DELETE: 404
PUT users/ada: a version
GET users/ada (stale): {"name":"Ada"}
GET users/ada (leader): {"name":"Ada"}
GET users/ada (linearizable): {"name":"Ada"}
PUT users/ada?cas=0: 409 conflict
PUT users/ada with its current version: ok
txn: 2 results
list users/: users/ada = {"name":"Ada L."}
list users/: users/bob = {}
list users/: users/eve = {}
plugin query GET users/bob: {}
`
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

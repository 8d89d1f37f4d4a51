package host_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// Example starts a three-node cluster in one process, writes through one
// follower and reads linearizably through another.
func Example() {
	dir, err := os.MkdirTemp("", "raftkv-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	start := func(id, addr string, bootstrap bool) *host.Node {
		cfg := host.DefaultConfig()
		cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Bootstrap = id, filepath.Join(dir, id), addr, bootstrap
		cfg.PluginCacheDir = filepath.Join(dir, "wasm-cache") // compile the KV plugin once
		cfg.DefaultPlugin = kvwasm.Module
		n, err := host.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	n1 := start("n1", "127.0.77.1:7101", true)
	defer n1.Close(ctx)
	if err := n1.WaitForLeader(ctx); err != nil {
		log.Fatal(err)
	}
	var nodes []*host.Node
	for i, id := range []string{"n2", "n3"} {
		n := start(id, fmt.Sprintf("127.0.77.%d:7101", i+2), false)
		defer n.Close(ctx)
		// Authorise the new node's key (replicated), trust the cluster, join.
		lines, err := n1.Trust(ctx, "", n.TrustLine())
		if err != nil {
			log.Fatal(err)
		}
		if err := n.AcceptTrust(lines); err != nil {
			log.Fatal(err)
		}
		if _, err := n1.Join(ctx, host.JoinRequest{NodeID: n.ID(), Address: n.Address()}); err != nil {
			log.Fatal(err)
		}
		if err := n.WaitForLeader(ctx); err != nil { // it has heard from the leader
			log.Fatal(err)
		}
		nodes = append(nodes, n)
	}

	set, _ := msgpack.Marshal(map[string]string{"op": "SET", "key": "hello", "value": "world"})
	if res, err := nodes[0].Apply(ctx, "kv", set); err != nil || !res.OK() {
		log.Fatal(err, res.Err())
	}
	get, _ := msgpack.Marshal(map[string]string{"op": "GET", "key": "hello"})
	res, err := nodes[1].Query(ctx, "kv", get, host.Linearizable)
	if err != nil || !res.OK() {
		log.Fatal(err, res.Err())
	}
	var out struct {
		Value string `msgpack:"value"`
	}
	msgpack.Unmarshal(res.Data, &out)
	fmt.Println(out.Value)
	members, _ := n1.Members(ctx)
	fmt.Println(len(members), "members")
	// Output:
	// world
	// 3 members
}

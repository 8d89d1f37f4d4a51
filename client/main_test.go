package client_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// endpoints are the HTTP API addresses of the 3-node cluster TestMain starts
// in-process (real nodes, Raft over the SSH transport, the kv plugin); the
// examples and tests use it.
var endpoints []string

// nodes are its members, in the order of endpoints.
var nodes []*host.Node

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftkv-client-test")
	if err != nil {
		log.Fatal(err)
	}
	var closeCluster func()
	nodes, endpoints, closeCluster, err = startCluster(dir, 3)
	if err != nil {
		log.Fatal(err)
	}
	code := m.Run()
	closeCluster()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startCluster starts n nodes serving the API with httptest; the first
// bootstraps, the others join through it.
func startCluster(dir string, n int) (nodes []*host.Node, endpoints []string, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		raftAddr := ln.Addr().String()
		ln.Close()
		cfg := host.DefaultConfig()
		cfg.NodeID, cfg.DataDir, cfg.RaftAddr = fmt.Sprintf("n%d", i+1), filepath.Join(dir, fmt.Sprintf("n%d", i+1)), raftAddr
		cfg.Bootstrap, cfg.DefaultPlugin = i == 0, kvwasm.Module
		cfg.PluginCacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache") // shared with the other packages' tests
		cfg.PluginCacheMaxBytes = 0
		cfg.ApplyTimeout = 30 * time.Second
		node, err := host.New(cfg)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		closers = append(closers, func() { node.Close(context.Background()) })
		srv := httptest.NewServer(httpapi.New(node, httpapi.DefaultConfig()).Handler())
		closers = append(closers, srv.Close)
		nodes, endpoints = append(nodes, node), append(endpoints, srv.URL)
		if i == 0 {
			if err := node.WaitForLeader(ctx); err != nil {
				closeAll()
				return nil, nil, nil, err
			}
			continue
		}
		if err := join(ctx, nodes[0], node); err != nil {
			closeAll()
			return nil, nil, nil, err
		}
	}
	// Every node applies the default plugin's deploy.
	for _, node := range nodes {
		for len(node.Plugins()) == 0 {
			if ctx.Err() != nil {
				closeAll()
				return nil, nil, nil, fmt.Errorf("%s never activated the kv plugin", node.ID())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes, endpoints, closeAll, nil
}

// join adds node to the cluster through member (retrying while leadership
// settles).
func join(ctx context.Context, member, node *host.Node) error {
	var err error
	for ctx.Err() == nil {
		var lines []string
		if lines, err = member.Trust(ctx, "", node.TrustLine()); err == nil {
			if err = node.AcceptTrust(lines); err == nil {
				if _, err = member.Join(ctx, host.JoinRequest{NodeID: node.ID(), Address: node.Address()}); err == nil {
					return nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("joining %s: %w", node.ID(), err)
}

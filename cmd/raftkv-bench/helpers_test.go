package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs raftkv-bench with args.
func cli(args ...string) cliResult {
	var out, errb bytes.Buffer
	code := doMain(context.Background(), args, &out, &errb)
	return cliResult{code, out.String(), errb.String()}
}

// mustCLI runs raftkv-bench and fails the test unless it exits 0.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	r := cli(args...)
	if r.code != 0 {
		t.Fatalf("raftkv-bench %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// inProcessNode is a one-node cluster ("solo") serving the HTTP API.
type inProcessNode struct {
	URL    string // http://HTTP
	HTTP   string // host:port
	Client *kvclient.Client
}

// startInProcess starts a real node (Raft over SSH, the kv plugin in wasm)
// and its HTTP API, and waits until it serves the kv plugin.
func startInProcess(t testing.TB) *inProcessNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := ln.Addr().String()
	ln.Close()
	cfg := host.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Bootstrap = "solo", t.TempDir(), raftAddr, true
	cfg.DefaultPlugin, cfg.ApplyTimeout = kvwasm.Module, 30*time.Second
	cfg.PluginCacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache") // shared with the other packages' tests
	cfg.PluginCacheMaxBytes = 0
	node, err := host.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpapi.New(node, httpapi.DefaultConfig()).Handler()}
	go srv.Serve(httpLn)
	t.Cleanup(func() { srv.Close() })
	n := &inProcessNode{HTTP: httpLn.Addr().String()}
	n.URL = "http://" + n.HTTP
	ccfg := kvclient.DefaultConfig()
	ccfg.Endpoints = []string{n.URL}
	if n.Client, err = kvclient.New(ccfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := node.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for len(node.Plugins()) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the kv plugin never became active")
		}
		time.Sleep(20 * time.Millisecond) // no notification to wait on
	}
	return n
}

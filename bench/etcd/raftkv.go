package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// raftkvCluster is three `raftkv serve` processes on 127.0.8.1-3.
type raftkvCluster struct {
	bin      string   // raftkv
	benchBin string   // raftkv-bench
	addrs    []string // HTTP base URLs
}

func raftkvIP(i int) string { return fmt.Sprintf("127.0.8.%d", i) }

// startRaftkv starts n1 (bootstrap), then n2 and n3 (join through n1), and
// waits for each node's /readyz.
func startRaftkv(ctx context.Context, procs *processes, bin, benchBin, dir string, logf func(string, ...any)) (*raftkvCluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &raftkvCluster{bin: bin, benchBin: benchBin}
	for i := 1; i <= 3; i++ {
		ip := raftkvIP(i)
		args := []string{"serve", "--node-id", fmt.Sprintf("n%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("n%d", i)),
			"--http-addr", ip + ":21080", "--raft-addr", ip + ":21081", "--mgmt-addr", ip + ":21082",
			"--plugin-cache-dir", filepath.Join(dir, "wasm-cache")}
		if i == 1 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", raftkvIP(1)+":21082")
		}
		args = append(args, strings.Fields(os.Getenv("BENCH_SERVE_FLAGS"))...)
		logPath := filepath.Join(dir, fmt.Sprintf("n%d.log", i))
		if err := procs.start(exec.Command(bin, args...), logPath); err != nil {
			return nil, fmt.Errorf("start n%d: %w", i, err)
		}
		addr := "http://" + ip + ":21080"
		c.addrs = append(c.addrs, addr)
		logf("started raftkv n%d on %s, log %s", i, addr, logPath)
		if i == 1 { // n1 compiles the plugin into the shared cache once
			if err := waitReady(ctx, addr); err != nil {
				return nil, fmt.Errorf("n1: %w (log %s)", err, logPath)
			}
		}
	}
	for i, addr := range c.addrs {
		if err := waitReady(ctx, addr); err != nil {
			return nil, fmt.Errorf("n%d: %w", i+1, err)
		}
	}
	return c, nil
}

// waitReady polls GET addr/readyz until it answers 200 (2 minutes at most).
func waitReady(ctx context.Context, addr string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s/readyz not 200 after 2m", addr)
}

// benchJSON is the part of `raftkv-bench --json` read here.
type benchJSON struct {
	OK         int64            `json:"ok"`
	Errors     int64            `json:"errors"`
	Elapsed    float64          `json:"elapsed_seconds"`
	OpsPerSec  float64          `json:"ops_per_sec"`
	ErrorKinds map[string]int64 `json:"error_kinds"`
	Latency    struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
}

// bench runs w for d with raftkv-bench against the leader.
func (c *raftkvCluster) bench(ctx context.Context, w workload, d time.Duration, preload int64) (result, error) {
	args := []string{"--addr", strings.Join(c.addrs, ","), "--target", "leader", "--json", "--quiet",
		"--op", w.op, "--clients", strconv.Itoa(w.clients), "--duration", d.String(),
		"--key-size", "16", "--value-size", "100"}
	if w.op == "get" {
		args = append(args, "--consistency", w.consistency, "--preload", strconv.FormatInt(preload, 10))
	}
	cmd := exec.CommandContext(ctx, c.benchBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var j benchJSON
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		return result{}, fmt.Errorf("raftkv-bench: %v; %v: %s", runErr, err, strings.TrimSpace(errb.String()))
	}
	return result{ops: j.OK, errors: j.Errors, errorKinds: fmt.Sprint(j.ErrorKinds), elapsed: time.Duration(j.Elapsed * float64(time.Second)),
		opsPerSec: j.OpsPerSec, p50: j.Latency.P50, p99: j.Latency.P99}, nil
}

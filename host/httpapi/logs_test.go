package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/logtest"
)

// TestReadinessProbesNotLogged: a node that is not ready answers every
// /readyz probe 503 but logs the change once, not a warning per probe.
func TestReadinessProbesNotLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := cluster.FastConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.PluginCacheDir = "lonely", filepath.Join(t.TempDir(), "d"), addr, cluster.SharedCache(t)
	n, err := host.New(cfg) // not bootstrapped, never added: no leader
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	rec := logtest.New(slog.LevelDebug)
	acfg := DefaultConfig()
	acfg.Logger = rec.Logger()
	srv := httptest.NewServer(New(n, acfg).Handler())
	t.Cleanup(srv.Close)
	for range 10 {
		wantErr(t, do(t, "GET", srv.URL+"/readyz", nil), http.StatusServiceUnavailable, "no_leader")
	}
	recs := rec.Records(nil)
	if len(recs) != 1 || recs[0].Level != slog.LevelInfo || !strings.Contains(recs[0].Attrs["reason"], "no leader") {
		t.Fatalf("10 failed probes logged %d records, want 1 at info: %v", len(recs), recs)
	}
	// A real failure on another route is still logged.
	wantErr(t, do(t, "PUT", srv.URL+"/v1/kv/k", "v"), http.StatusServiceUnavailable, "no_leader")
	if n := len(rec.Records(logtest.AtLeast(slog.LevelWarn))); n != 1 {
		t.Fatalf("a failed write logged %d warnings, want 1", n)
	}
}

// TestAccessLog: with AccessLog every answered request but the probes is
// logged once with its route and status; without it none is.
func TestAccessLog(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 1})
	n := c.Members[0].Node
	for _, on := range []bool{false, true} {
		rec := logtest.New(slog.LevelDebug)
		cfg := DefaultConfig()
		cfg.Logger, cfg.AccessLog = rec.Logger(), on
		srv := httptest.NewServer(New(n, cfg).Handler())
		wantOK(t, do(t, "PUT", srv.URL+"/v1/kv/greeting", "hello"))
		wantErr(t, do(t, "GET", srv.URL+"/v1/kv/absent", nil), http.StatusNotFound, "not_found")
		wantOK(t, do(t, "GET", srv.URL+"/readyz", nil))
		wantOK(t, do(t, "GET", srv.URL+"/healthz", nil))
		wantErr(t, do(t, "GET", srv.URL+"/nowhere", nil), http.StatusNotFound, "not_found")
		srv.Close()
		access := rec.Records(func(r logtest.Record) bool { return r.Message == "http request" })
		if !on {
			if len(access) != 0 {
				t.Fatalf("access log off, yet: %v", access)
			}
			continue
		}
		want := []string{"PUT /v1/kv/greeting PUT /v1/kv/{key...} 200", "GET /v1/kv/absent GET /v1/kv/{key...} 404",
			"GET /nowhere unmatched 404"}
		if len(access) != len(want) {
			t.Fatalf("%d access log lines, want %d: %v", len(access), len(want), access)
		}
		for i, r := range access {
			a := r.Attrs
			if got := a["method"] + " " + a["path"] + " " + a["route"] + " " + a["status"]; got != want[i] || r.Level != slog.LevelInfo ||
				a["remote"] == "" || a["duration"] == "" || a["bytes"] == "0" {
				t.Errorf("line %d: %v, want %s", i, r, want[i])
			}
		}
	}
}

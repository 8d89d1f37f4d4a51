package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	kvclient "github.com/raftkv/raftkv/client"
)

// benchJSON runs raftkv-bench --json and decodes its report.
func benchJSON(t *testing.T, wantCode int, args ...string) benchReport {
	t.Helper()
	r := cli(append([]string{"--json"}, args...)...)
	if r.code != wantCode {
		t.Fatalf("raftkv-bench %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, wantCode, r.stdout, r.stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("raftkv-bench %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	return rep
}

// checkClean checks a run where every operation succeeded.
func checkClean(t *testing.T, rep benchReport, ok int64) {
	t.Helper()
	if rep.OK != ok || rep.Errors != 0 || rep.Latency.Samples != ok || rep.OpsPerSec <= 0 || rep.ErrorKinds != nil {
		t.Fatalf("want %d ok and no errors: %+v", ok, rep)
	}
	l := rep.Latency
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Fatalf("percentiles out of order: %+v", l)
	}
}

// TestBench runs raftkv-bench in-process against a real single node.
func TestBench(t *testing.T) {
	n := startInProcess(t)
	addr := "--addr=" + n.URL

	t.Run("put", func(t *testing.T) {
		rep := benchJSON(t, 0, addr, "--count", "300", "--clients", "4")
		checkClean(t, rep, 300)
		if rep.Op != "put" || rep.Leader != "solo" || rep.Target != "leader" || len(rep.Addrs) != 1 || rep.Conns != 4 || rep.KeySize != 16 || rep.ValueSize != 100 {
			t.Fatalf("report: %+v", rep)
		}
		// The keys are new and of --key-size bytes: list them.
		items, err := n.Client.ListAll(t.Context(), kvclient.ListRequest{}, 10000)
		if err != nil {
			t.Fatal(err)
		}
		sized := 0
		for _, it := range items {
			if len(it.Key) == 16 && len(it.Value) == 100 {
				sized++
			}
		}
		if sized < 300 {
			t.Fatalf("%d keys of 16 bytes with 100-byte values after 300 writes", sized)
		}
	})

	t.Run("get", func(t *testing.T) {
		for _, c := range []string{"stale", "leader", "linearizable"} {
			rep := benchJSON(t, 0, addr, "--op", "get", "--consistency", c, "--preload", "100", "--count", "300", "--clients", "3", "--conns", "2")
			checkClean(t, rep, 300)
			if rep.NotFound != 0 || rep.Consistency != c || rep.Preload != 100 || rep.Conns != 2 {
				t.Fatalf("get %s: %+v", c, rep)
			}
		}
		// A key space larger than the preloaded keys: the others are misses
		// (about half of them; all or none has a probability of 2^-199).
		rep := benchJSON(t, 0, addr, "--op", "get", "--keys", "20", "--preload", "10", "--count", "200", "--key-size", "8")
		checkClean(t, rep, 200)
		if rep.NotFound == 0 || rep.NotFound == 200 {
			t.Fatalf("get over 20 keys, 10 preloaded: %d not found of 200", rep.NotFound)
		}
	})

	t.Run("mixed", func(t *testing.T) {
		rep := benchJSON(t, 0, addr, "--op", "mixed", "--mix", "80:20", "--preload", "50", "--count", "400", "--clients", "4", "--consistency", "linearizable")
		checkClean(t, rep, 400)
		if rep.Reads == nil || rep.Writes == nil || rep.Reads.Count+rep.Writes.Count != 400 || rep.Writes.Count == 0 || rep.Reads.Count < rep.Writes.Count || rep.Mix != "80:20" {
			t.Fatalf("mixed: %+v reads %+v writes %+v", rep, rep.Reads, rep.Writes)
		}
	})

	t.Run("cas", func(t *testing.T) {
		// Updates at the version each client last saw: any mismatch would be a 409.
		rep := benchJSON(t, 0, addr, "--op", "cas", "--keys", "20", "--preload", "20", "--count", "200", "--clients", "4")
		checkClean(t, rep, 200)
		// Without --keys every CAS creates a new key (version 0).
		checkClean(t, benchJSON(t, 0, addr, "--op", "cas", "--count", "50", "--clients", "2"), 50)
		// Without --preload the key space starts empty: still version 0 first.
		checkClean(t, benchJSON(t, 0, addr, "--op", "cas", "--keys", "5", "--count", "40", "--clients", "5"), 40)
	})

	t.Run("duration", func(t *testing.T) {
		r := cli(addr, "--duration", "1500ms", "--clients", "2", "--progress", "--value-size", "10")
		if r.code != 0 || !strings.Contains(r.stdout, "throughput:") || !strings.Contains(r.stdout, "p99.9") {
			t.Fatalf("bench --duration: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "ops/s") || !strings.Contains(r.stderr, "[") {
			t.Fatalf("no progress on stderr with --progress: %q", r.stderr)
		}
		rep := benchJSON(t, 0, addr, "--duration", "500ms", "--count", "1000000")
		if rep.OK == 0 || rep.ElapsedSeconds < 0.5 || rep.ElapsedSeconds > 30 {
			t.Fatalf("bench --duration 500ms: %+v", rep)
		}
		// --count bounds a --duration run too.
		checkClean(t, benchJSON(t, 0, addr, "--duration", "1m", "--count", "20"), 20)
	})

	t.Run("text-markdown-any", func(t *testing.T) {
		out := mustCLI(t, addr, "--count", "200", "--clients", "2")
		for _, want := range []string{"write: 2 clients, 2 conns, leader solo", "done:       200 ok, 0 errors", "throughput:", "p50 ", "p99.9 "} {
			if !strings.Contains(out, want) {
				t.Fatalf("summary lacks %q:\n%s", want, out)
			}
		}
		out = mustCLI(t, "--addr", n.URL+","+n.HTTP, "--target", "any", "--count", "100", "--clients", "2", "--markdown", "--label", "w")
		if !strings.HasPrefix(out, "| w | 2 | ") || !strings.HasSuffix(out, " | 0 |\n") || strings.Count(out, "|") != 9 {
			t.Fatalf("markdown row: %q", out)
		}
	})

	t.Run("errors", func(t *testing.T) {
		// Values over the 1 MiB limit: every write is refused, none counted.
		rep := benchJSON(t, 1, addr, "--value-size", "1100000", "--count", "5")
		if rep.OK != 0 || rep.Errors != 5 || rep.ErrorKinds["HTTP 413 too_large"] != 5 || rep.Latency.Samples != 0 {
			t.Fatalf("too-large values: %+v", rep)
		}
		for _, args := range [][]string{
			{"--op", "bogus"}, {"--op", "get"}, {"--consistency", "x"}, {"--op", "mixed", "--preload", "1", "--mix", "9"},
			{"--clients", "0"}, {"--target", "nearest"}, {"--op", "cas", "--keys", "2", "--clients", "3"},
			{"--key-size", "2", "--count", "101"}, {"extra-argument"},
		} {
			if r := cli(append([]string{addr}, args...)...); r.code != exitUsage {
				t.Errorf("bench %v: exit %d, want %d: %s", args, r.code, exitUsage, r.stderr)
			}
		}
	})
}

// TestBenchCountsOnlyConfirmed runs bench against a fake node whose answers
// are chosen by the test.
func TestBenchCountsOnlyConfirmed(t *testing.T) {
	var gets, puts atomic.Int64
	var getStatus, putStatus atomic.Int64
	getStatus.Store(http.StatusNotFound)
	putStatus.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/cluster":
			w.Write([]byte(`{"node_id":"b","leader":"a","members":[]}`))
		case r.Method == http.MethodPut:
			puts.Add(1)
			if s := int(putStatus.Load()); s != http.StatusOK {
				w.WriteHeader(s)
				w.Write([]byte(`{"error":{"code":"no_leader","message":"no leader"}}`))
				return
			}
			w.Write([]byte(`{"version":7}`))
		case r.Method == http.MethodGet:
			gets.Add(1)
			w.WriteHeader(int(getStatus.Load()))
			w.Write([]byte(`{"error":{"code":"not_found","message":"key not found"}}`))
		}
	}))
	defer srv.Close()

	// The leader "a" is not among --addr.
	r := cli("--addr", srv.URL)
	if r.code != 1 || !strings.Contains(r.stderr, "the leader is a, which is none of --addr") {
		t.Fatalf("leader not listed: exit %d: %s", r.code, r.stderr)
	}
	// 404 on preloaded keys is an error.
	rep := benchJSON(t, 1, "--addr", srv.URL, "--target", "any", "--op", "get", "--preload", "10", "--count", "20", "--clients", "2")
	if puts.Load() != 10 || gets.Load() != 20 || rep.OK != 0 || rep.Errors != 20 || rep.ErrorKinds["HTTP 404 not_found (a preloaded key)"] != 20 {
		t.Fatalf("404 on preloaded keys: puts %d gets %d: %+v", puts.Load(), gets.Load(), rep)
	}
	// A 200 with the wrong value size is an error too.
	getStatus.Store(http.StatusOK)
	rep = benchJSON(t, 1, "--addr", srv.URL, "--target", "any", "--op", "get", "--preload", "1", "--count", "3")
	if rep.OK != 0 || rep.Errors != 3 || rep.ErrorKinds["wrong value size"] != 3 {
		t.Fatalf("wrong value size: %+v", rep)
	}
	// A failing preload stops the run before it starts.
	putStatus.Store(http.StatusServiceUnavailable)
	gets.Store(0)
	r = cli("--addr", srv.URL, "--target", "any", "--op", "get", "--preload", "5")
	if r.code != 1 || !strings.Contains(r.stderr, "preload: 0 of 5 keys written, then HTTP 503 no_leader") || gets.Load() != 0 {
		t.Fatalf("failing preload: exit %d, %d gets: %s", r.code, gets.Load(), r.stderr)
	}
}

// TestBenchTargetFollower: --target follower sends every request to the
// first --addr that is not the leader, and refuses a list of leaders only.
// (The two nodes are fakes answering /v1/cluster: what is tested is where
// bench sends its requests.)
func TestBenchTargetFollower(t *testing.T) {
	fake := func(id string, puts *atomic.Int64) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/v1/cluster":
				w.Write([]byte(`{"node_id":"` + id + `","leader":"a","members":[]}`))
			case r.Method == http.MethodPut:
				puts.Add(1)
				w.Write([]byte(`{"version":7}`))
			default:
				w.WriteHeader(http.StatusNotFound)
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	var leaderPuts, followerPuts atomic.Int64
	leader, follower := fake("a", &leaderPuts), fake("b", &followerPuts)
	rep := benchJSON(t, 0, "--addr", leader.URL+","+follower.URL, "--target", "follower", "--count", "30", "--clients", "3")
	if rep.OK != 30 || followerPuts.Load() != 30 || leaderPuts.Load() != 0 || rep.Target != "follower" || rep.Leader != "a" {
		t.Fatalf("--target follower: %d puts on the leader, %d on the follower: %+v", leaderPuts.Load(), followerPuts.Load(), rep)
	}
	r := cli("--addr", leader.URL, "--target", "follower", "--count", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "every --addr is the leader a") || leaderPuts.Load() != 0 {
		t.Fatalf("--target follower, only the leader listed: exit %d, %d puts: %s", r.code, leaderPuts.Load(), r.stderr)
	}
}

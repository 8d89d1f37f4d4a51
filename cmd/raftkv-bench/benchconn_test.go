package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testPool returns a pool of n connections to base, closed at the end of the
// test.
func testPool(t testing.TB, ctx context.Context, base, token string, n int, timeout time.Duration) *benchPool {
	t.Helper()
	p, err := newBenchPool(ctx, base, token, nil, n, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// countConns makes srv count the connections it accepts; srv is started.
func countConns(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	return &n
}

// echoHandler answers "METHOD URI len(body) content-type authorization".
func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if strings.HasSuffix(r.URL.Path, "/missing") {
		w.WriteHeader(http.StatusNotFound)
	}
	fmt.Fprintf(w, "%s %s %d %s %s", r.Method, r.RequestURI, len(body), r.Header.Get("Content-Type"), r.Header.Get("Authorization"))
}

// roundTrip sends one request on a connection of p.
func roundTrip(p *benchPool, method, target string, body []byte) (int, string, error) {
	c := p.get()
	if c == nil {
		return 0, "", p.ctx.Err()
	}
	defer p.put(c)
	status, b, err := c.roundTrip(method, []byte(target), body)
	return status, string(b), err
}

func TestBenchConnKeepAlive(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
	conns := countConns(srv)
	defer srv.Close()

	// One connection serves every request; the base's path is a prefix.
	p := testPool(t, t.Context(), srv.URL+"/pre/", "tok", 1, 5*time.Second)
	for i := range 100 {
		target := fmt.Sprintf("/v1/kv/k%d?cas=%d", i, i)
		status, body, err := roundTrip(p, "PUT", target, bytes.Repeat([]byte("v"), i))
		want := fmt.Sprintf("PUT /pre%s %d application/octet-stream Bearer tok", target, i)
		if err != nil || status != 200 || body != want {
			t.Fatalf("request %d: %d %q %v, want 200 %q", i, status, body, err, want)
		}
		status, body, err = roundTrip(p, "GET", "/v1/kv/missing", nil)
		if want := "GET /pre/v1/kv/missing 0  Bearer tok"; err != nil || status != 404 || body != want {
			t.Fatalf("GET missing: %d %q %v, want 404 %q", status, body, err, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("200 requests on a pool of 1 opened %d connections", n)
	}

	// 8 workers share 2 connections.
	p = testPool(t, t.Context(), srv.URL, "", 2, 5*time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if status, _, err := roundTrip(p, "GET", "/v1/kv/x", nil); err != nil || status != 200 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || conns.Load() > 1+2 {
		t.Fatalf("8 workers on 2 connections: %d failed, %d connections in all", failed.Load(), conns.Load())
	}
}

func TestBenchConnChunked(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // more than the read buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, part := range [][]byte{[]byte("one,"), big, []byte(",three")} {
			w.Write(part)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("the server does not answer chunked: %v", resp.TransferEncoding)
	}

	want := "one," + string(big) + ",three"
	p := testPool(t, t.Context(), srv.URL, "", 1, 5*time.Second)
	for range 3 {
		status, body, err := roundTrip(p, "GET", "/", nil)
		if err != nil || status != 200 || body != want {
			t.Fatalf("chunked answer: %d, %d bytes, %v; want 200, %d bytes", status, len(body), err, len(want))
		}
	}
}

func TestBenchConnClose(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1)%2 == 0 {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte("ok"))
	}))
	conns := countConns(srv)
	defer srv.Close()

	p := testPool(t, t.Context(), srv.URL, "", 1, 5*time.Second)
	for i := range 10 {
		if status, body, err := roundTrip(p, "GET", "/", nil); err != nil || status != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, status, body, err)
		}
	}
	// Every second answer closes: requests 1-2 on the first connection, 3-4 on
	// the second, …
	if n := conns.Load(); n != 5 {
		t.Fatalf("10 requests, every second answered with Connection: close: %d connections, want 5", n)
	}
}

// rawServer is a TCP server answering each request with the bytes reply
// returns for its method and target: nil leaves it unanswered until the end
// of the test; hangUp closes the connection after the answer. It does not
// allocate per request.
type rawServer struct {
	URL     string
	accepts atomic.Int64
}

func startRawServer(t testing.TB, reply func(method, target []byte) (answer []byte, hangUp bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{URL: "http://" + ln.Addr().String()}
	done := make(chan struct{})
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		close(done)
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	serve := func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		var req []byte
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			req = append(req[:0], line...)
			length := int64(0)
			for {
				h, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(bytes.TrimSpace(h)) == 0 {
					break
				}
				if name, v, _ := bytes.Cut(h, []byte(":")); bytes.EqualFold(name, []byte("Content-Length")) {
					length, _ = parseDecimal(bytes.TrimSpace(v))
				}
			}
			if _, err := br.Discard(int(length)); err != nil {
				return
			}
			method, rest, _ := bytes.Cut(req, []byte(" "))
			target, _, _ := bytes.Cut(rest, []byte(" "))
			answer, hangUp := reply(method, target)
			if answer == nil {
				<-done
				return
			}
			if _, err := c.Write(answer); err != nil || hangUp {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	return s
}

// rawClusterAnswer answers GET /v1/cluster for raftkv-bench.
func rawClusterAnswer(target []byte) []byte {
	if string(target) != "/v1/cluster" {
		return nil
	}
	const body = `{"node_id":"raw","leader":"raw","members":[]}`
	return fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func TestBenchConnMalformed(t *testing.T) {
	for _, tc := range []struct {
		answer, want string
		malformed    bool
	}{
		{"garbage\r\n\r\n", `malformed answer: status line "garbage"`, true},
		{"HTTP/1.1 2000 OK\r\n\r\n", `malformed answer: status line "HTTP/1.1 2000 OK"`, true},
		{"HTTP/1.1 100 Continue\r\n\r\n", `malformed answer: "HTTP/1.1 100 Continue": informational answers are not supported`, true},
		{"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", `malformed answer: header line "no colon"`, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", `malformed answer: Content-Length "-1"`, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", `malformed answer: Content-Length "2"`, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", `malformed answer: Transfer-Encoding "gzip" (only chunked is supported)`, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", `malformed answer: chunk size line "zz"`, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", `malformed answer: "c" after a chunk, want CRLF`, true},
		{"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("x", 20_000) + "\r\n\r\n", `malformed answer: line longer than 16384 bytes`, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc", "unexpected EOF", false},
	} {
		srv := startRawServer(t, func(_, _ []byte) ([]byte, bool) {
			return []byte(tc.answer), strings.Contains(tc.answer, "close")
		})
		p := testPool(t, t.Context(), srv.URL, "", 1, 5*time.Second)
		for i := range 2 {
			_, _, err := roundTrip(p, "GET", "/v1/kv/k", nil)
			var me *benchMalformedError
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &me) != tc.malformed ||
				!strings.HasPrefix(err.Error(), `GET "`+srv.URL+`/v1/kv/k": `) {
				t.Fatalf("answer %.40q: error %v, want %q (malformed: %v)", tc.answer, err, tc.want, tc.malformed)
			}
			// After the error the connection is closed: the next request dials.
			if n := srv.accepts.Load(); n != int64(i+1) {
				t.Fatalf("answer %.40q: %d connections after %d requests", tc.answer, n, i+1)
			}
		}
	}

	// raftkv-bench counts them as errors and reports the first.
	srv := startRawServer(t, func(_, target []byte) ([]byte, bool) {
		if a := rawClusterAnswer(target); a != nil {
			return a, false
		}
		return []byte("garbage\r\n\r\n"), false
	})
	rep := benchJSON(t, 1, "--addr", srv.URL, "--count", "5", "--clients", "2")
	if rep.OK != 0 || rep.Errors != 5 || rep.ErrorKinds["malformed answer"] != 5 {
		t.Fatalf("bench against a garbage server: %+v", rep)
	}
	r := cli("--addr", srv.URL, "--count", "3")
	if want := `errors:     3 × malformed answer, first: PUT "` + srv.URL + `/v1/kv/`; r.code != 1 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, `: malformed answer: status line "garbage"`) {
		t.Fatalf("bench summary lacks %q: exit %d\n%s\n%s", want, r.code, r.stdout, r.stderr)
	}
}

func TestBenchConnTimeout(t *testing.T) {
	received := make(chan struct{}, 10)
	srv := startRawServer(t, func(_, target []byte) ([]byte, bool) {
		if a := rawClusterAnswer(target); a != nil {
			return a, false
		}
		received <- struct{}{}
		return nil, false // never answers
	})

	// --timeout bounds each request.
	p := testPool(t, t.Context(), srv.URL, "", 1, 200*time.Millisecond)
	start := time.Now()
	_, _, err := roundTrip(p, "GET", "/v1/kv/k", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) < 200*time.Millisecond || time.Since(start) > 10*time.Second {
		t.Fatalf("a server that never answers: %v after %v, want a timeout after 200ms", err, time.Since(start))
	}
	<-received
	rep := benchJSON(t, 1, "--addr", srv.URL, "--count", "2", "--timeout", "100ms")
	if rep.Errors != 2 || rep.ErrorKinds["timeout"] != 2 {
		t.Fatalf("bench --timeout 100ms against a server that never answers: %+v", rep)
	}
	<-received
	<-received

	// Cancelling the context interrupts a request in flight at once.
	ctx, cancel := context.WithCancel(t.Context())
	p = testPool(t, ctx, srv.URL, "", 1, time.Minute)
	errc := make(chan error, 1)
	go func() {
		_, _, err := roundTrip(p, "GET", "/v1/kv/k", nil)
		errc <- err
	}()
	<-received
	start = time.Now()
	cancel()
	if err := <-errc; err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled request: %v after %v", err, time.Since(start))
	}
	if c := p.get(); c != nil {
		t.Fatal("get on a cancelled pool returned a connection")
	}

	// So does cancelling raftkv-bench (Ctrl-C): it stops at once and prints
	// what it has.
	ctx, cancel = context.WithCancel(t.Context())
	go func() {
		<-received
		cancel()
	}()
	var stdout, stderr bytes.Buffer
	start = time.Now()
	err = runBench(ctx, []string{"--addr", srv.URL, "--count", "10", "--clients", "4", "--timeout", "1m", "--json"}, &stdout, &stderr)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second || !strings.Contains(stdout.String(), `"interrupted": true`) {
		t.Fatalf("interrupted bench: %v after %v\n%s%s", err, time.Since(start), stdout.String(), stderr.String())
	}
}

func TestBenchConnTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/cluster":
			w.Write([]byte(`{"node_id":"tls","leader":"tls","members":[]}`))
		case r.Header.Get("Authorization") != "Bearer tok":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			io.Copy(io.Discard, r.Body)
			w.Write([]byte(`{"version":3}`))
		}
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	// The TLS configuration of --ca-cert, as raftkv-bench builds it.
	tc, err := tlsConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newBenchPool(t.Context(), srv.URL, "tok", tc, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for range 3 {
		if status, body, err := roundTrip(p, "PUT", "/v1/kv/k", []byte("v")); err != nil || status != 200 || body != `{"version":3}` {
			t.Fatalf("PUT over TLS: %d %q %v", status, body, err)
		}
	}
	// Without the CA the server's certificate is unknown.
	p = testPool(t, t.Context(), srv.URL, "tok", 1, 5*time.Second)
	if _, _, err := roundTrip(p, "GET", "/v1/kv/k", nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS without the CA: %v, want a certificate error", err)
	}

	rep := benchJSON(t, 0, "--addr", srv.URL, "--ca-cert", caFile, "--token", "tok", "--op", "cas", "--keys", "4", "--count", "20", "--clients", "2")
	checkClean(t, rep, 20)
	rep = benchJSON(t, 1, "--addr", srv.URL, "--ca-cert", caFile, "--count", "3")
	if rep.ErrorKinds["HTTP 401"] != 3 {
		t.Fatalf("bench over TLS without the token: %+v", rep)
	}
}

// TestBenchDoAllocs checks that a request of the measurement loop allocates
// nothing once its connection is open (the server here does not allocate
// either: testing.AllocsPerRun counts the whole process).
func TestBenchDoAllocs(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 100)
	getAnswer := append([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), value...)
	putAnswer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"version\":7}")
	srv := startRawServer(t, func(method, target []byte) ([]byte, bool) {
		if a := rawClusterAnswer(target); a != nil {
			return a, false
		}
		if string(method) == "GET" {
			return getAnswer, false
		}
		return putAnswer, false
	})
	o := &benchOptions{op: "cas", consistency: "stale", clients: 1, keys: 1000, count: 1, timeout: 5 * time.Second, target: "leader", keySize: 16, valSize: 100}
	if err := o.validate(srv.URL, ""); err != nil {
		t.Fatal(err)
	}
	r, err := newBenchRun(t.Context(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r.preloadN = 1000
	pools, err := r.newPools(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer closePools(pools)
	w := r.newWorker(0, pools, 0)
	for _, tc := range []struct {
		name        string
		kind        int
		wantVersion bool
	}{{"get", opRead, false}, {"put", opWrite, false}, {"cas", opCAS, true}} {
		allocs := testing.AllocsPerRun(1000, func() {
			if res, v := w.do(t.Context(), tc.kind, 42, 6, tc.wantVersion); res != resOK || tc.wantVersion && v != 7 {
				t.Fatalf("%s: result %d, version %d; errors %v", tc.name, res, v, r.errorFirst)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per request, want 0", tc.name, allocs)
		}
	}
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBenchConn compares this client with net/http's, as bench used it
// before, on GETs of a 100-byte value from the same httptest server. The
// cpu-ns/op figure is the whole process's (client and server): the server's
// part is the same in both, so the difference is the client's.
func BenchmarkBenchConn(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(value) }))
	defer srv.Close()
	target := []byte("/v1/kv/0000000000000042?consistency=stale")

	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d/benchconn", clients), func(b *testing.B) {
			p := testPool(b, b.Context(), srv.URL, "", clients, 5*time.Second)
			runClients(b, clients, func() error {
				c := p.get()
				defer p.put(c)
				status, body, err := c.roundTrip("GET", target, nil)
				if err == nil && (status != 200 || len(body) != len(value)) {
					err = fmt.Errorf("%d, %d bytes", status, len(body))
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("clients=%d/net-http", clients), func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, DisableCompression: true}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			url := srv.URL + string(target)
			runClients(b, clients, func() error {
				req, err := http.NewRequestWithContext(b.Context(), "GET", url, nil)
				if err != nil {
					return err
				}
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				n, err := io.Copy(io.Discard, resp.Body)
				if err == nil && (resp.StatusCode != 200 || n != int64(len(value))) {
					err = fmt.Errorf("%d, %d bytes", resp.StatusCode, n)
				}
				return err
			})
		})
	}
}

// runClients calls op b.N times from clients goroutines and reports the CPU time
// per call.
func runClients(b *testing.B, clients int, op func() error) {
	if err := op(); err != nil { // connect before measuring
		b.Fatal(err)
	}
	var next atomic.Int64
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// stall is a body that delivers data and then fails as a connection does
// when its read deadline passes.
type stall struct{ data *bytes.Reader }

func (s stall) Read(p []byte) (int, error) {
	if s.data.Len() > 0 {
		return s.data.Read(p)
	}
	return 0, os.ErrDeadlineExceeded
}

// TestReadBodyGrowsAsBytesArrive: a body buffer grows with what arrives, not
// with what Content-Length announces, and the size limits and their 413
// answers stay. Memory is measured as the bytes allocated during the call.
func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	t.Run("announced and not sent", func(t *testing.T) {
		r := httptest.NewRequest("PUT", "/v1/plugins/p", nil)
		r.ContentLength = abi.MaxModuleSize
		r.Body = io.NopCloser(stall{bytes.NewReader(make([]byte, 1000))})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := readBody(httptest.NewRecorder(), r, nil, abi.MaxModuleSize)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("reading 1000 bytes of an announced %d allocated %d bytes", r.ContentLength, alloc)
		}
		if e := classify(err); e.status != http.StatusRequestTimeout || e.code != "request_timeout" {
			t.Errorf("stalled body: %v -> %d %s, want 408 request_timeout", err, e.status, e.code)
		}
	})
	t.Run("sent in small reads", func(t *testing.T) {
		want := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
		r := httptest.NewRequest("PUT", "/v1/plugins/p", nil)
		r.ContentLength = int64(len(want))
		r.Body = io.NopCloser(iotestOneK{bytes.NewReader(want)})
		got, err := readBody(httptest.NewRecorder(), r, []byte("head"), abi.MaxModuleSize)
		if err != nil || !bytes.Equal(got[4:], want) || string(got[:4]) != "head" {
			t.Fatalf("readBody: %d bytes, %v", len(got), err)
		}
		if cap(got) > len(got)+len(got)/8 {
			t.Errorf("buffer of %d bytes for a %d-byte body", cap(got), len(got))
		}
	})
	t.Run("shorter than announced", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/v1/txn", strings.NewReader("abc"))
		r.ContentLength = 10
		if _, err := readBody(httptest.NewRecorder(), r, nil, 100); classify(err).status != http.StatusBadRequest {
			t.Fatalf("short body: %v", err)
		}
	})
	t.Run("limits", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/v1/txn", strings.NewReader(strings.Repeat("x", 101)))
		if _, err := readBody(httptest.NewRecorder(), r, nil, 100); classify(err).status != http.StatusRequestEntityTooLarge {
			t.Fatalf("Content-Length over the limit: %v", err)
		}
		r = httptest.NewRequest("POST", "/v1/txn", unsized{strings.NewReader(strings.Repeat("x", 101))})
		r.ContentLength = -1
		if _, err := readBody(httptest.NewRecorder(), r, nil, 100); classify(err).status != http.StatusRequestEntityTooLarge {
			t.Fatalf("unsized body over the limit: %v", err)
		}
	})
}

// iotestOneK reads at most 1 KiB at a time, as a slow network delivers.
type iotestOneK struct{ r io.Reader }

func (o iotestOneK) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 1<<10)]) }

// TestStalledBodies: a client that sends the headers of a request with a
// body and then stalls has its connection closed once the body's time is up
// (RequestTimeout for ordinary routes, StreamIdleTimeout without progress
// for deploys and restores), on every route and on none; a stream that keeps
// making progress is not cut off, even past both bounds.
func TestStalledBodies(t *testing.T) {
	t.Parallel() // a node of its own, and it waits out time limits: beside the package's other tests
	wasm := wasmbuild.Build(t, "../plugin/testdata/nodescriber")
	c := cluster.Start(t, cluster.Options{Nodes: 1, Configure: tolerant})
	cfg := DefaultConfig()
	cfg.RequestTimeout = time.Second
	cfg.StreamIdleTimeout = 2 * time.Second
	n := serveNode(t, c.Leader().Node, cfg, c.Leader())
	addr := strings.TrimPrefix(n.url, "http://")

	// The stalls run side by side (each waits out its bound); the group
	// ends when all have.
	t.Run("stalls", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, ct string
			announced, sent        int
			bound                  time.Duration
			status                 int
		}{
			{"kv put", "PUT", "/v1/kv/k", "application/octet-stream", 1 << 20, 10, cfg.RequestTimeout, 408},
			{"txn", "POST", "/v1/txn", "application/json", 100, 10, cfg.RequestTimeout, 408},
			{"command", "POST", "/v1/plugins/kv/commands", "application/msgpack", 1000, 1, cfg.RequestTimeout, 408},
			{"deploy", "PUT", "/v1/plugins/p", "application/wasm", abi.MaxModuleSize, 1000, cfg.StreamIdleTimeout, 408},
			{"restore", "POST", "/v1/restore", "application/octet-stream", 10 << 20, 100, cfg.StreamIdleTimeout, 408},
			// Bodies that are never read: net/http discards them before answering.
			{"refused media", "POST", "/v1/txn", "text/plain", 1000, 10, cfg.RequestTimeout, 415},
			{"no route", "POST", "/nowhere", "application/json", 1000, 10, cfg.RequestTimeout, 404},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel() // each waits out its bound: side by side
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", // a Host the browser guard allows
					tc.method, tc.path, tc.ct, tc.announced, bytes.Repeat([]byte("x"), tc.sent))
				start := time.Now()
				conn.SetReadDeadline(start.Add(tc.bound + 20*time.Second)) // the test's own bound
				br := bufio.NewReader(conn)
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no answer %v after the client stalled: %v", time.Since(start), err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != tc.status {
					t.Errorf("status %d, want %d", res.StatusCode, tc.status)
				}
				if _, err := br.ReadByte(); err != io.EOF {
					t.Fatalf("connection not closed after the answer (%v, after %v)", err, time.Since(start))
				}
				if d := time.Since(start); d < tc.bound-100*time.Millisecond {
					t.Errorf("closed after %v, before the %v bound: not by the deadline", d, tc.bound)
				}
			})
		}

		t.Run("slow deploy", func(t *testing.T) {
			t.Parallel()
			// Five parts, one every half StreamIdleTimeout: the whole upload takes
			// longer than both bounds, and compiling follows the body.
			pr, pw := io.Pipe()
			go func() {
				part := (len(wasm) + 4) / 5
				for b := wasm; len(b) > 0; b = b[min(part, len(b)):] {
					if _, err := pw.Write(b[:min(part, len(b))]); err != nil {
						return
					}
					time.Sleep(cfg.StreamIdleTimeout / 2)
				}
				pw.Close()
			}()
			req, err := http.NewRequest("PUT", n.url+"/v1/plugins/slow", pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(wasm))
			req.Header.Set("Content-Type", "application/wasm")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("slow deploy: %d %s", res.StatusCode, body)
			}
		})
	})

	// The node still serves: nothing of the stalled requests is left behind.
	if v := put(t, n, "after", "ok"); v == 0 {
		t.Fatal("no version")
	}
}

package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/cluster"
)

// Benchmarks of the key-value hot paths on a single-node cluster, through
// the handler (no network) and over HTTP with parallel keep-alive clients:
//
//	go test -run XXX -bench . -benchtime 5s ./host/httpapi/
func benchNode(b *testing.B) (*node, http.Handler) {
	c := cluster.Start(b, cluster.Options{Nodes: 1})
	m := c.Leader()
	api := New(m.Node, DefaultConfig())
	srv := httptest.NewServer(api.Handler())
	b.Cleanup(srv.Close)
	return &node{m: m, api: api, url: srv.URL}, api.Handler()
}

func BenchmarkHTTPGetStale(b *testing.B) {
	n, _ := benchNode(b)
	hc := benchClient()
	put := func(k string) {
		req, _ := http.NewRequest("PUT", n.url+"/v1/kv/"+k, bytes.NewReader([]byte("value")))
		res, err := hc.Do(req)
		if err != nil || res.StatusCode != 200 {
			b.Fatal(err, res)
		}
		res.Body.Close()
	}
	put("bench")
	url := n.url + "/v1/kv/bench?consistency=stale"
	start := time.Now()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := hc.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatal(res.Status)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}

func BenchmarkHTTPPut(b *testing.B) {
	n, _ := benchNode(b)
	hc := benchClient()
	var seq atomic.Int64
	value := bytes.Repeat([]byte("v"), 100)
	start := time.Now()
	b.SetParallelism(32) // writes batch in Raft: they need concurrency
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := "k" + strconv.FormatInt(seq.Add(1)%10000, 10)
			req, _ := http.NewRequest("PUT", n.url+"/v1/kv/"+k, bytes.NewReader(value))
			res, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatal(res.Status)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

func benchClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1024
	tr.MaxConnsPerHost = 0
	return &http.Client{Transport: tr}
}

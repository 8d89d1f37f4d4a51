package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// node is a cluster member with its API served over HTTP.
type node struct {
	m    *cluster.Member
	api  *API
	url  string // client API
	mgmt string // management API
}

// testCluster is an in-process cluster whose every member serves the API.
type testCluster struct {
	c     *cluster.Cluster
	nodes map[string]*node
}

func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	tc := &testCluster{c: cluster.Start(t, cluster.Options{Nodes: n, Configure: tolerant}), nodes: map[string]*node{}}
	cfg := DefaultConfig()
	cfg.RequestTimeout = 30 * time.Second // a loaded machine under the race detector
	for _, m := range tc.c.Members {
		tc.nodes[m.ID] = serveNode(t, m.Node, cfg, m)
	}
	return tc
}

// tolerant gives Raft timeouts that survive a loaded 2-core machine under
// the race detector: these tests are about the API, not failover.
func tolerant(cfg *host.Config) {
	cfg.HeartbeatTimeout = 4 * time.Second
	cfg.ElectionTimeout = 4 * time.Second
	cfg.LeaderLeaseTimeout = 2 * time.Second
	cfg.ApplyTimeout = 30 * time.Second // a deploy compiles and instantiates on every node
}

func serveNode(t *testing.T, n *host.Node, cfg Config, m *cluster.Member) *node {
	t.Helper()
	api := New(n, cfg)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	mgmt := httptest.NewServer(api.MgmtHandler())
	t.Cleanup(mgmt.Close)
	return &node{m: m, api: api, url: srv.URL, mgmt: mgmt.URL}
}

func (tc *testCluster) leader() *node { return tc.nodes[tc.c.Leader().ID] }

func (tc *testCluster) followers() []*node {
	var out []*node
	for _, m := range tc.c.Followers() {
		out = append(out, tc.nodes[m.ID])
	}
	return out
}

// response is an HTTP answer, read whole.
type response struct {
	status int
	body   []byte
	header http.Header
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// unsized hides a body's length, so that it is sent chunked.
type unsized struct{ io.Reader }

// do sends a request; hdrs are header name/value pairs. body is nil, []byte,
// string or an io.Reader.
func do(t *testing.T, method, u string, body any, hdrs ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Set(hdrs[i], hdrs[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	return response{status: res.StatusCode, body: data, header: res.Header}
}

// apiErr is the JSON error body.
type apiErr struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		PluginCode *int   `json:"plugin_code"`
		Leader     string `json:"leader"`
	} `json:"error"`
}

// wantErr checks an error answer's status and code and returns its body.
func wantErr(t *testing.T, r response, status int, code string) apiErr {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("answer %s: not a JSON error: %v", r, err)
	}
	if r.status != status || e.Error.Code != code {
		t.Fatalf("answer %s: want %d %s", r, status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	return e
}

func wantOK(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("answer %s: want 200", r)
	}
}

func decode(t *testing.T, r response, v any) {
	t.Helper()
	wantOK(t, r)
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %s: %v", r, err)
	}
}

func kvURL(base, key string) string { return base + "/v1/kv/" + url.PathEscape(key) }

// put writes key=value through n and returns the new version. It is for
// setting up state: it retries while the cluster has no stable leader (a
// loaded machine under the race detector), which a SET tolerates.
func put(t *testing.T, n *node, key, value string) uint64 {
	t.Helper()
	var r response
	for try := 0; ; try++ {
		r = do(t, "PUT", kvURL(n.url, key), value)
		if r.status < 500 || try == 5 {
			break
		}
		t.Logf("PUT %q: %s; retrying", key, r)
		time.Sleep(time.Second)
	}
	var out struct{ Version uint64 }
	decode(t, r, &out)
	if out.Version == 0 {
		t.Fatalf("PUT %q: version 0", key)
	}
	return out.Version
}

// get reads key through n at a consistency level.
func get(t *testing.T, n *node, key, level string) response {
	t.Helper()
	return do(t, "GET", kvURL(n.url, key)+"?consistency="+level, nil)
}

// eventually polls a stale read until it returns want.
func eventually(t *testing.T, n *node, key, want string) {
	t.Helper()
	cluster.Poll(t, 20*time.Second, func() bool {
		r := get(t, n, key, "stale")
		return r.status == 200 && string(r.body) == want
	}, "stale read of %q on %s never returned %q", key, n.m.ID, want)
}

func digest(t *testing.T, n *node) string {
	t.Helper()
	d, err := n.m.Node.StateDigest("kv")
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// seedCommand encodes a command the way the seed's Python client does:
// msgpack.packb({'op': op, 'key': key, 'value': value}), str fields in order.
func seedCommand(op, key, value string) []byte {
	b := mp.AppendMapHeader(nil, 3)
	for _, s := range []string{"op", op, "key", key, "value", value} {
		b = mp.AppendString(b, s)
	}
	return b
}

const msgpackCT = "application/msgpack"

func TestMain(m *testing.M) {
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		// waitFuture's goroutine stays blocked on a future that Raft took
		// but never answers because it shut down first (host/future.go).
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/raftkv/raftkv/host.waitFuture.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startAPICluster starts a 3-node cluster serving the API and returns it
// with its leader and two followers.
func startAPICluster(t *testing.T) (tc *testCluster, l, f1, f2 *node) {
	t.Helper()
	tc = startCluster(t, 3)
	fs := tc.followers()
	return tc, tc.leader(), fs[0], fs[1]
}

// TestAPI runs the API's endpoints on one 3-node cluster. Its subtests
// share the cluster but no state: each writes and reads keys of its own (a
// plugin it deploys it removes), so any one runs alone (-run TestAPI/CAS)
// or in any order. What changes the cluster itself (a partition, a restore,
// a membership change) is a test of its own: TestAPIIsolated,
// TestAPIBackupRestore, TestAPIJoinRemove.
func TestAPI(t *testing.T) {
	tc, l, f1, f2 := startAPICluster(t)

	t.Run("Seed", func(t *testing.T) {
		for _, n := range []*node{l, f1} {
			r := do(t, "POST", n.url+"/insert-val", seedCommand("SET", "hello", "world"), "Content-Type", msgpackCT)
			if r.status != 200 || string(r.body) != "ok" {
				t.Fatalf("SET via %s: %s", n.m.ID, r)
			}
			r = do(t, "GET", n.url+"/get-val?key=hello", nil)
			if r.status != 200 || string(r.body) != "world" {
				t.Fatalf("GET via %s: %s", n.m.ID, r)
			}
			r = do(t, "POST", n.url+"/insert-val", seedCommand("DELETE", "hello", ""), "Content-Type", msgpackCT)
			if r.status != 200 || string(r.body) != "ok" {
				t.Fatalf("DELETE via %s: %s", n.m.ID, r)
			}
			r = do(t, "GET", n.url+"/get-val?key=hello", nil)
			e := wantErr(t, r, 404, "not_found")
			if e.Error.Message != "Key Not Found" {
				t.Fatalf("GET after DELETE: %s", r)
			}
		}
		// The seed's client also sends values that are not UTF-8 as bin.
		b := mp.AppendMapHeader(nil, 3)
		b = mp.AppendString(b, "op")
		b = mp.AppendString(b, "SET")
		b = mp.AppendString(b, "key")
		b = mp.AppendString(b, "bin")
		b = mp.AppendString(b, "value")
		b = mp.AppendBytes(b, []byte{0xff, 0})
		wantOK(t, do(t, "POST", f2.url+"/insert-val", b, "Content-Type", "application/x-msgpack"))
		r := do(t, "GET", f2.url+"/get-val?key=bin&consistency=linearizable", nil)
		if r.status != 200 || !bytes.Equal(r.body, []byte{0xff, 0}) {
			t.Fatalf("GET bin: %s", r)
		}
	})

	t.Run("ThroughFollower", func(t *testing.T) {
		v := put(t, f1, "tf", "one")
		for _, level := range []string{"leader", "linearizable"} {
			for _, n := range []*node{l, f1, f2} {
				r := get(t, n, "tf", level)
				if r.status != 200 || string(r.body) != "one" || r.header.Get("X-Raftkv-Version") != strconv.FormatUint(v, 10) {
					t.Fatalf("%s read on %s: %s (version %q, want %d)", level, n.m.ID, r, r.header.Get("X-Raftkv-Version"), v)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
					t.Fatalf("Content-Type %q", ct)
				}
			}
		}
		eventually(t, f2, "tf", "one")
		// The default consistency is leader; unknown ones are refused.
		r := do(t, "GET", kvURL(f2.url, "tf"), nil)
		if r.status != 200 || string(r.body) != "one" {
			t.Fatalf("default read: %s", r)
		}
		wantErr(t, get(t, f2, "tf", "bogus"), 400, "bad_request")
		wantErr(t, get(t, f1, "missing", "linearizable"), 404, "not_found")
		wantErr(t, get(t, f1, "missing", "stale"), 404, "not_found")

		var del struct{ Deleted *bool }
		decode(t, do(t, "DELETE", kvURL(f2.url, "tf"), nil), &del)
		if del.Deleted == nil || !*del.Deleted {
			t.Fatalf("DELETE: %+v", del)
		}
		decode(t, do(t, "DELETE", kvURL(f2.url, "tf"), nil), &del)
		if *del.Deleted {
			t.Fatal("second DELETE deleted something")
		}
		wantErr(t, get(t, f1, "tf", "linearizable"), 404, "not_found")
	})

	t.Run("Keys", func(t *testing.T) {
		keys := []string{"a/b", "a//b/", "with space", "ünï©ødé 🔑", "nul\x00byte", "%2F", "?&=#", "..", ".", "-", strings.Repeat("k", abi.MaxKeySize)}
		for i, k := range keys {
			escaped := url.PathEscape(k)
			escaped = strings.ReplaceAll(escaped, ".", "%2E") // the mux cleans dot segments
			u := f1.url + "/v1/kv/" + escaped
			val := fmt.Sprintf("value %d", i)
			wantOK(t, do(t, "PUT", u, val))
			r := do(t, "GET", u+"?consistency=linearizable", nil)
			if r.status != 200 || string(r.body) != val {
				t.Fatalf("key %q: %s", k, r)
			}
			// The seed endpoint reads the same key.
			r = do(t, "GET", l.url+"/get-val?key="+url.QueryEscape(k), nil)
			if r.status != 200 || string(r.body) != val {
				t.Fatalf("get-val %q: %s", k, r)
			}
		}
		// An unescaped slash is part of the key too.
		wantOK(t, do(t, "PUT", f1.url+"/v1/kv/x/y/z", "xyz"))
		if r := get(t, l, "x/y/z", "leader"); string(r.body) != "xyz" {
			t.Fatalf("x/y/z: %s", r)
		}
		wantErr(t, do(t, "PUT", kvURL(f1.url, strings.Repeat("k", abi.MaxKeySize+1)), "v"), 413, "too_large")
	})

	t.Run("CAS", func(t *testing.T) {
		u := kvURL(f1.url, "cas")
		var out struct{ Version uint64 }
		decode(t, do(t, "PUT", u+"?cas=0", "v1"), &out)
		v1 := out.Version
		e := wantErr(t, do(t, "PUT", u+"?cas=0", "v2"), 409, "conflict")
		if e.Error.Message != "key exists" || e.Error.PluginCode == nil || *e.Error.PluginCode != int(abi.CodeConflict) {
			t.Fatalf("conflict: %+v", e)
		}
		e = wantErr(t, do(t, "PUT", u+"?cas="+strconv.FormatUint(v1+100, 10), "v2"), 409, "conflict")
		if !strings.Contains(e.Error.Message, "version mismatch") {
			t.Fatalf("conflict: %+v", e)
		}
		decode(t, do(t, "PUT", u+"?cas="+strconv.FormatUint(v1, 10), "v2"), &out)
		if out.Version <= v1 {
			t.Fatalf("CAS version %d after %d", out.Version, v1)
		}
		wantErr(t, do(t, "DELETE", u+"?cas="+strconv.FormatUint(v1, 10), nil), 409, "conflict")
		if r := get(t, l, "cas", "linearizable"); string(r.body) != "v2" {
			t.Fatalf("after failed CAS: %s", r)
		}
		var del struct{ Deleted bool }
		decode(t, do(t, "DELETE", u+"?cas="+strconv.FormatUint(out.Version, 10), nil), &del)
		if !del.Deleted {
			t.Fatal("conditional DELETE did not delete")
		}
		wantErr(t, do(t, "PUT", u+"?cas=5", "v3"), 409, "conflict") // absent, version expected
	})

	t.Run("List", func(t *testing.T) {
		var want []string
		for i := range 10 {
			k := fmt.Sprintf("list/%02d", i)
			put(t, f2, k, "v"+k)
			want = append(want, k)
		}
		put(t, f2, "list0", "outside the prefix")
		type item struct {
			Key, KeyB64, Value, ValueB64 string
			Version                      uint64
		}
		type page struct {
			Items   []map[string]any
			Next    *string
			NextB64 *string `json:"next_b64"`
		}
		var got []string
		start := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("too many pages")
			}
			q := url.Values{"prefix": {"list/"}, "limit": {"3"}, "consistency": {"linearizable"}}
			if start != "" {
				q.Set("start", start)
			}
			var p page
			decode(t, do(t, "GET", f1.url+"/v1/kv?"+q.Encode(), nil), &p)
			if len(p.Items) > 3 {
				t.Fatalf("page of %d items", len(p.Items))
			}
			for _, it := range p.Items {
				k := it["key"].(string)
				if it["value"] != "v"+k || it["version"].(float64) == 0 {
					t.Fatalf("item %v", it)
				}
				got = append(got, k)
			}
			if p.Next == nil {
				if len(p.Items) == 3 && len(got) < 10 {
					t.Fatal("no next on a full page")
				}
				break
			}
			start = *p.Next
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("listed %v, want %v", got, want)
		}
		// A range with start and end, and binary keys as key_b64.
		var p page
		decode(t, do(t, "GET", f1.url+"/v1/kv?start=list/03&end=list/05", nil), &p)
		if len(p.Items) != 2 || p.Items[0]["key"] != "list/03" || p.Next != nil {
			t.Fatalf("range: %+v", p)
		}
		p = page{} // json.Unmarshal would merge into the old items' maps
		wantOK(t, do(t, "PUT", f1.url+"/v1/kv/bink%FF%00", []byte{0xfe}))
		decode(t, do(t, "GET", f1.url+"/v1/kv?prefix=bink&consistency=linearizable", nil), &p)
		if len(p.Items) != 1 || p.Items[0]["key_b64"] != base64.StdEncoding.EncodeToString([]byte("bink\xff\x00")) ||
			p.Items[0]["value_b64"] != "/g==" || p.Items[0]["key"] != nil {
			t.Fatalf("binary item: %+v", p.Items)
		}
		// Stale listing on a follower converges.
		cluster.Poll(t, 10*time.Second, func() bool {
			var p page
			decode(t, do(t, "GET", f2.url+"/v1/kv?prefix=list/&consistency=stale&limit=100", nil), &p)
			return len(p.Items) == 10
		}, "stale list on a follower")
	})

	t.Run("Txn", func(t *testing.T) {
		put(t, l, "txn-b", "old")
		body := `{"ops":[{"op":"SET","key":"txn-a","value":"1"},{"op":"delete","key":"txn-b"},{"op":"CAS","key":"txn-c","value":"x","version":0},` +
			`{"op":"SET","key_b64":"dHhuLWQ=","value_b64":"/wA="}]}`
		var out struct{ Results []map[string]any }
		decode(t, do(t, "POST", f1.url+"/v1/txn", body, "Content-Type", "application/json"), &out)
		if len(out.Results) != 4 || out.Results[0]["version"] == nil || out.Results[1]["deleted"] != true || out.Results[2]["version"] == nil {
			t.Fatalf("results: %+v", out.Results)
		}
		if r := get(t, l, "txn-d", "leader"); !bytes.Equal(r.body, []byte{0xff, 0}) {
			t.Fatalf("txn-d: %s", r)
		}
		before := digest(t, l)
		// ops[2] fails: nothing of the TXN is applied.
		body = `{"ops":[{"op":"SET","key":"txn-e","value":"1"},{"op":"DELETE","key":"txn-a"},{"op":"CAS","key":"txn-c","value":"y","version":0}]}`
		e := wantErr(t, do(t, "POST", f2.url+"/v1/txn", body), 409, "conflict")
		if !strings.HasPrefix(e.Error.Message, "ops[2]: ") {
			t.Fatalf("failing op not named: %+v", e)
		}
		wantErr(t, get(t, l, "txn-e", "linearizable"), 404, "not_found")
		if r := get(t, l, "txn-a", "linearizable"); string(r.body) != "1" {
			t.Fatalf("txn-a: %s", r)
		}
		if d := digest(t, l); d != before {
			t.Fatal("a failed TXN changed the state")
		}
		// MsgPack body; an empty TXN.
		mb, _ := msgpack.Marshal(map[string]any{"ops": []any{map[string]any{"op": "SET", "key": "txn-m", "value": "m"}}})
		decode(t, do(t, "POST", f1.url+"/v1/txn", mb, "Content-Type", msgpackCT), &out)
		if len(out.Results) != 1 {
			t.Fatalf("msgpack TXN: %+v", out)
		}
		decode(t, do(t, "POST", f1.url+"/v1/txn", `{"ops":[]}`, "Content-Type", "application/json"), &out)
		if len(out.Results) != 0 {
			t.Fatalf("empty TXN: %+v", out)
		}
	})

	t.Run("PluginCommands", func(t *testing.T) {
		var set struct{ Version uint64 }
		decode(t, do(t, "POST", f1.url+"/v1/plugins/kv/commands", `{"op":"SET","key":"pj","value":{"$b64":"AP8="}}`,
			"Content-Type", "application/json"), &set)
		if set.Version == 0 {
			t.Fatal("no version")
		}
		var got map[string]any
		decode(t, do(t, "POST", f2.url+"/v1/plugins/kv/queries?consistency=linearizable", `{"op":"GET","key":"pj"}`), &got)
		if got["value"].(map[string]any)["$b64"] != "AP8=" || got["version"].(float64) != float64(set.Version) {
			t.Fatalf("query: %v", got)
		}
		// MsgPack in and out.
		cmd, _ := msgpack.Marshal(map[string]any{"op": "SET", "key": "pm", "value": "text"})
		r := do(t, "POST", f2.url+"/v1/plugins/kv/commands", cmd, "Content-Type", msgpackCT, "Accept", msgpackCT)
		wantOK(t, r)
		if r.header.Get("Content-Type") != msgpackCT {
			t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
		}
		var mres struct {
			Version uint64 `msgpack:"version"`
		}
		if err := msgpack.Unmarshal(r.body, &mres); err != nil || mres.Version == 0 {
			t.Fatalf("msgpack result %x: %v", r.body, err)
		}
		q, _ := msgpack.Marshal(map[string]any{"op": "GET", "key": "pm"})
		r = do(t, "POST", l.url+"/v1/plugins/kv/queries?consistency=stale", q, "Content-Type", msgpackCT, "Accept", "application/json;q=0.5, application/msgpack")
		var gres struct {
			Value   []byte `msgpack:"value"`
			Version uint64 `msgpack:"version"`
		}
		if err := msgpack.Unmarshal(r.body, &gres); err != nil || string(gres.Value) != "text" || gres.Version != mres.Version {
			t.Fatalf("msgpack query %s: %v", r, err)
		}
		// MsgPack in, JSON out: bin that is UTF-8 becomes a string.
		decode(t, do(t, "POST", l.url+"/v1/plugins/kv/queries", q, "Content-Type", msgpackCT), &got)
		if got["value"] != "text" {
			t.Fatalf("query: %v", got)
		}
		// The plugin's own errors keep their codes.
		e := wantErr(t, do(t, "POST", f1.url+"/v1/plugins/kv/queries", `{"op":"GET","key":"nope"}`), 404, "not_found")
		if e.Error.PluginCode == nil || *e.Error.PluginCode != 2 || e.Error.Message != "key not found" {
			t.Fatalf("plugin error: %+v", e)
		}
		e = wantErr(t, do(t, "POST", f1.url+"/v1/plugins/kv/commands", `{"op":"CAS","key":"pm","value":"x","version":1}`), 409, "conflict")
		if *e.Error.PluginCode != 3 {
			t.Fatalf("plugin error: %+v", e)
		}
	})

	t.Run("Plugins", func(t *testing.T) {
		var list struct{ Plugins []host.PluginInfo }
		decode(t, do(t, "GET", f1.url+"/v1/plugins", nil), &list)
		if len(list.Plugins) != 1 || list.Plugins[0].Name != "kv" || list.Plugins[0].Hash == "" {
			t.Fatalf("plugins: %+v", list)
		}
		var info host.PluginInfo
		decode(t, do(t, "PUT", f1.url+"/v1/plugins/kv2", kvwasm.Module, "Content-Type", "application/wasm"), &info)
		if info.Name != "kv2" || info.Hash != list.Plugins[0].Hash {
			t.Fatalf("deploy: %+v", info)
		}
		wantOK(t, do(t, "POST", f2.url+"/v1/plugins/kv2/commands", `{"op":"SET","key":"a","value":"b"}`))
		var d host.Digest
		decode(t, do(t, "GET", l.url+"/v1/plugins/kv2/digest", nil), &d)
		if d.Plugin != "kv2" || d.Keys != 1 || len(d.Digest) != 64 || d.AppliedIndex == 0 {
			t.Fatalf("digest: %+v", d)
		}
		e := wantErr(t, do(t, "PUT", f1.url+"/v1/plugins/bad", []byte("\x00asm not really"), "Content-Type", "application/octet-stream"), 400, "bad_request")
		if e.Error.Message == "" {
			t.Fatal("no reason for an invalid module")
		}
		wantOK(t, do(t, "DELETE", f2.url+"/v1/plugins/kv2?drop_state=true", nil))
		wantErr(t, do(t, "POST", l.url+"/v1/plugins/kv2/commands", `{"op":"SET","key":"a","value":"b"}`), 404, "not_found")
		cluster.Poll(t, 10*time.Second, func() bool {
			return do(t, "GET", f1.url+"/v1/plugins/kv2/digest", nil).status == 404
		}, "kv2 still has a digest")
	})

	t.Run("Cluster", func(t *testing.T) {
		for _, n := range []*node{l, f1} {
			for _, base := range []string{n.url, n.mgmt} {
				var info struct {
					Leader       string `json:"leader"`
					Term         uint64 `json:"term"`
					AppliedIndex uint64 `json:"applied_index"`
					CommitIndex  uint64 `json:"commit_index"`
					NodeID       string `json:"node_id"`
					Members      []struct {
						ID, Address, Suffrage string
						Leader, Reachable     bool
						LastContact           *time.Time `json:"last_contact"`
					} `json:"members"`
				}
				decode(t, do(t, "GET", base+"/v1/cluster", nil), &info)
				if info.Leader != l.m.ID || info.NodeID != n.m.ID || info.Term == 0 || info.AppliedIndex == 0 || info.CommitIndex == 0 || len(info.Members) != 3 {
					t.Fatalf("cluster on %s: %+v", n.m.ID, info)
				}
				leaders := 0
				for _, m := range info.Members {
					if m.Leader {
						leaders++
					}
					if m.Suffrage != "voter" || m.Address == "" || (n == l && !m.Reachable) {
						t.Fatalf("member %+v", m)
					}
				}
				if leaders != 1 {
					t.Fatalf("%d leaders", leaders)
				}
			}
		}
	})

	t.Run("HealthAndMetrics", func(t *testing.T) {
		// A follower may still be applying a deploy and removal (the Plugins
		// subtest's; loading a module takes a while under the race
		// detector): /readyz is 503 until it has caught up, which is the
		// point of it.
		cluster.Poll(t, 30*time.Second, func() bool { return f1.m.Node.Stats().Ready }, "%s did not catch up", f1.m.ID)
		for _, n := range []*node{l, f1} {
			for _, base := range []string{n.url, n.mgmt} {
				for _, p := range []string{"/healthz", "/readyz"} {
					if r := do(t, "GET", base+p, nil); r.status != 200 || string(r.body) != "ok" {
						t.Fatalf("%s on %s: %s", p, n.m.ID, r)
					}
				}
			}
		}
		// The samples the metrics below count, made here.
		put(t, f1, "metrics", "v")
		wantErr(t, do(t, "PUT", kvURL(f1.url, "metrics")+"?cas=0", "v2"), 409, "conflict")
		wantOK(t, get(t, f1, "metrics", "leader"))
		r := do(t, "GET", f1.url+"/metrics", nil)
		wantOK(t, r)
		for _, want := range []string{
			`raftkv_http_requests_total{code="200",route="PUT /v1/kv/{key...}"}`,
			`raftkv_http_requests_total{code="409",route="PUT /v1/kv/{key...}"}`,
			`raftkv_http_request_seconds_bucket{route="GET /v1/kv/{key...}"`,
			`raftkv_http_requests_total{code="404",route="unmatched"}`,
			"raftkv_fsm_apply_batch_seconds", "raftkv_plugin_commands_total", "raftkv_raft_commit_index",
			"go_goroutines", "process_",
		} {
			if want == `raftkv_http_requests_total{code="404",route="unmatched"}` {
				do(t, "GET", f1.url+"/no/such/thing", nil)
				r = do(t, "GET", f1.url+"/metrics", nil)
			}
			if !bytes.Contains(r.body, []byte(want)) {
				t.Fatalf("/metrics lacks %s", want)
			}
		}
		// The route label is the pattern, never a raw path.
		if bytes.Contains(r.body, []byte(`route="/v1/kv/`)) {
			t.Fatal("raw path in a route label")
		}
	})

	t.Run("Auth", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Token = "s3cret"
		n := serveNode(t, f1.m.Node, cfg, f1.m)
		for _, c := range []struct{ method, url string }{
			{"GET", kvURL(n.url, "tf")}, {"PUT", kvURL(n.url, "auth")}, {"GET", n.url + "/v1/cluster"},
			{"GET", n.url + "/metrics"}, {"GET", n.url + "/no/such/route"}, {"POST", n.url + "/v1/kv/x"},
			{"GET", n.mgmt + "/join?peerID=x&peerAddress=y"}, {"POST", n.mgmt + "/v1/cluster/trust"},
			{"GET", n.url + "/get-val?key=hello"}, {"GET", n.url + "/v1/backup"},
		} {
			wantErr(t, do(t, c.method, c.url, "x"), 401, "unauthorized")
			wantErr(t, do(t, c.method, c.url, "x", "Authorization", "Bearer wrong"), 401, "unauthorized")
			wantErr(t, do(t, c.method, c.url, "x", "Authorization", "s3cret"), 401, "unauthorized")
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			wantOK(t, do(t, "GET", n.url+p, nil))
			wantOK(t, do(t, "GET", n.mgmt+p, nil))
		}
		auth := []string{"Authorization", "Bearer s3cret"}
		wantOK(t, do(t, "PUT", kvURL(n.url, "auth"), "yes", auth...))
		if r := do(t, "GET", kvURL(n.url, "auth"), nil, auth...); string(r.body) != "yes" {
			t.Fatalf("authorized read: %s", r)
		}
		wantOK(t, do(t, "GET", n.url+"/metrics", nil, auth...))
		wantErr(t, do(t, "GET", n.url+"/no/such/route", nil, auth...), 404, "not_found")
		r := do(t, "POST", n.url+"/v1/kv/x", nil, auth...)
		wantErr(t, r, 405, "method_not_allowed")
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "PUT") {
			t.Fatalf("405 Allow: %q", allow)
		}
	})

	t.Run("BadInput", func(t *testing.T) { testBadInput(t, tc) })

}

// TestAPIIsolated: on a follower cut off from the others a stale read
// answers from local state, and anything that needs the leader fails with an
// error, never a false success.
func TestAPIIsolated(t *testing.T) {
	tc, l, _, f2 := startAPICluster(t)
	put(t, l, "iso", "before")
	eventually(t, f2, "iso", "before")
	cfg := DefaultConfig()
	cfg.RequestTimeout = 3 * time.Second
	n := serveNode(t, f2.m.Node, cfg, f2.m)
	tc.c.Isolate(f2.m)
	defer func() {
		tc.c.Heal()
		tc.c.WaitConverged(3)
	}()
	// A stale read answers from local state; anything that needs the
	// leader fails with an error, never a false success.
	if r := do(t, "GET", kvURL(n.url, "iso")+"?consistency=stale", nil); string(r.body) != "before" {
		t.Fatalf("stale read on an isolated follower: %s", r)
	}
	for _, c := range []struct{ method, url, body string }{
		{"GET", kvURL(n.url, "iso") + "?consistency=linearizable", ""},
		{"GET", kvURL(n.url, "iso") + "?consistency=leader", ""},
		{"PUT", kvURL(n.url, "iso"), "during"},
	} {
		r := do(t, c.method, c.url, c.body)
		var e apiErr
		if r.status < 500 || json.Unmarshal(r.body, &e) != nil || e.Error.Code == "" {
			t.Fatalf("%s %s on an isolated follower: %s", c.method, c.url, r)
		}
		t.Logf("%s %s on an isolated follower: %s", c.method, c.url, r)
	}
}

// TestAPIBackupRestore: a backup taken through the API restores through the
// leader only, a bad one changes nothing, a good one replaces the state.
func TestAPIBackupRestore(t *testing.T) {
	tc, _, _, _ := startAPICluster(t)
	l := tc.leader()
	put(t, l, "br", "in the backup")
	r := do(t, "GET", l.url+"/v1/backup", nil)
	wantOK(t, r)
	if r.header.Get("Content-Type") != "application/octet-stream" || len(r.body) < 8 || string(r.body[:8]) != "RKVSNAP1" {
		t.Fatalf("backup: %d bytes, %q", len(r.body), r.header.Get("Content-Type"))
	}
	backup := r.body
	put(t, l, "br", "after the backup")
	put(t, l, "br-new", "after the backup")
	var f *node
	for _, n := range tc.followers() {
		f = n
	}
	e := wantErr(t, do(t, "POST", f.url+"/v1/restore", backup, "Content-Type", "application/octet-stream"), 503, "not_leader")
	if e.Error.Leader != l.m.ID || !strings.Contains(e.Error.Message, l.m.ID) {
		t.Fatalf("not_leader does not name the leader: %+v", e)
	}
	before := digest(t, l)
	wantErr(t, do(t, "POST", l.url+"/v1/restore", backup[:len(backup)-10]), 400, "bad_request")
	wantErr(t, do(t, "POST", l.url+"/v1/restore", "garbage", "Content-Type", "application/octet-stream"), 400, "bad_request")
	// Anything after the backup's end (a stray byte, two backups
	// concatenated) is not a backup raftkv wrote.
	wantErr(t, do(t, "POST", l.url+"/v1/restore", string(backup)+"x", "Content-Type", "application/octet-stream"), 400, "bad_request")
	if digest(t, l) != before {
		t.Fatal("a bad restore changed the state")
	}
	wantOK(t, do(t, "POST", l.url+"/v1/restore", unsized{bytes.NewReader(backup)}, "Content-Type", "application/octet-stream"))
	l = tc.leader()
	if r := get(t, l, "br", "linearizable"); string(r.body) != "in the backup" {
		t.Fatalf("after restore: %s", r)
	}
	wantErr(t, get(t, l, "br-new", "linearizable"), 404, "not_found")
	eventually(t, f, "br", "in the backup")
}

// TestAPIJoinRemove: see testJoinRemove.
func TestAPIJoinRemove(t *testing.T) {
	tc, _, _, _ := startAPICluster(t)
	testJoinRemove(t, tc)
}

// testJoinRemove adds a fourth node through the management API, the way
// raftkv serve --join does, then removes it.
func testJoinRemove(t *testing.T, tc *testCluster) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := cluster.FastConfig()
	tolerant(&cfg)
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr = "n4", filepath.Join(t.TempDir(), "n4"), addr
	cfg.PluginCacheDir = cluster.SharedCache(t)
	n4, err := host.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n4.Close(context.Background())

	f := tc.followers()[0]
	var trust struct{ Trust []string }
	decode(t, do(t, "POST", f.mgmt+"/v1/cluster/trust", map2json(t, map[string]any{"line": n4.TrustLine()}), "Content-Type", "application/json"), &trust)
	if len(trust.Trust) < 4 {
		t.Fatalf("trust lines: %v", trust.Trust)
	}
	if err := n4.AcceptTrust(trust.Trust); err != nil {
		t.Fatal(err)
	}
	// The seed's join adds the node once its key is trusted (README,
	// "Security model and key distribution").
	if r := do(t, "GET", f.mgmt+"/join?peerID=n4&peerAddress="+url.QueryEscape(n4.Address()), nil); r.status != 200 || string(r.body) != "ok" {
		t.Fatalf("seed join: %s", r)
	}
	// The v1 join is idempotent for a member.
	decode(t, do(t, "POST", f.mgmt+"/v1/cluster/join", map2json(t, map[string]any{"id": "n4", "address": n4.Address(), "non_voter": false})), &trust)
	n4api := serveNode(t, n4, DefaultConfig(), nil)
	put(t, f, "joined", "yes")
	cluster.Poll(t, 30*time.Second, func() bool {
		r := do(t, "GET", kvURL(n4api.url, "joined")+"?consistency=stale", nil)
		return r.status == 200 && string(r.body) == "yes"
	}, "n4 never caught up")
	members := func(base string) []string {
		var info struct{ Members []struct{ ID string } }
		decode(t, do(t, "GET", base+"/v1/cluster", nil), &info)
		var ids []string
		for _, m := range info.Members {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if ids := members(f.url); len(ids) != 4 {
		t.Fatalf("members after join: %v", ids)
	}
	wantErr(t, do(t, "DELETE", f.mgmt+"/v1/cluster/members/nope", nil), 404, "not_found")
	wantOK(t, do(t, "DELETE", f.mgmt+"/v1/cluster/members/n4", nil))
	cluster.Poll(t, 10*time.Second, func() bool { return len(members(f.url)) == 3 }, "n4 still a member")
	put(t, f, "after-remove", "ok")
}

func map2json(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testBadInput sends bad input to every endpoint and checks the status, the
// error code and that the state did not change.
func testBadInput(t *testing.T, tc *testCluster) {
	l := tc.leader()
	f := tc.followers()[0]
	put(t, l, "k", "unchanged")
	wantOK(t, do(t, "PUT", l.url+"/v1/plugins/kv2", kvwasm.Module))
	defer do(t, "DELETE", l.url+"/v1/plugins/kv2?drop_state=true", nil)
	cluster.Poll(t, 10*time.Second, func() bool {
		return do(t, "GET", f.url+"/v1/plugins/kv2/digest", nil).status == 200
	}, "kv2 not deployed on %s", f.m.ID)
	// A first write creates kv2's namespace: host.StateDigest reports an
	// absent namespace as zeros, an empty one as sha256(""), and any
	// applied command (even a failed one) creates it.
	wantOK(t, do(t, "POST", l.url+"/v1/plugins/kv2/commands", `{"op":"SET","key":"k","value":"v"}`))

	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	mpack := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bomb := []byte{0xdd, 0xff, 0xff, 0xff, 0xff}                          // an array claiming 2^32 elements
	mapBomb := []byte{0x81, 0xa3, 'o', 'p', 0xdb, 0x7f, 0xff, 0xff, 0xff} // a 2 GiB string
	deep := strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70)
	const (
		js  = "application/json"
		mpk = msgpackCT
	)
	cases := []struct {
		name         string
		mgmt         bool
		method, path string
		ct           string
		body         any
		status       int
		code         string
	}{
		{"put empty key", false, "PUT", "/v1/kv/", "", "v", 400, "bad_request"},
		{"put bad cas", false, "PUT", "/v1/kv/k?cas=abc", "", "v", 400, "bad_request"},
		{"put negative cas", false, "PUT", "/v1/kv/k?cas=-1", "", "v", 400, "bad_request"},
		{"put empty cas", false, "PUT", "/v1/kv/k?cas=", "", "v", 400, "bad_request"},
		{"put bad escape", false, "PUT", "/v1/kv/k?cas=%zz", "", "v", 400, "bad_request"},
		{"put cas twice", false, "PUT", "/v1/kv/k?cas=1&cas=2", "", "v", 400, "bad_request"},
		{"get consistency twice", false, "GET", "/v1/kv/k?consistency=stale&consistency=linearizable", "", nil, 400, "bad_request"},
		{"put key too large", false, "PUT", "/v1/kv/" + string(big(abi.MaxKeySize+1)), "", "v", 413, "too_large"},
		{"put value too large", false, "PUT", "/v1/kv/k", "", big(abi.MaxValueSize + 1), 413, "too_large"},
		{"put value too large chunked", false, "PUT", "/v1/kv/k", "", unsized{bytes.NewReader(big(abi.MaxValueSize + 1))}, 413, "too_large"},
		{"get bad consistency", false, "GET", "/v1/kv/k?consistency=eventual", "", nil, 400, "bad_request"},
		{"get empty key", false, "GET", "/v1/kv/", "", nil, 400, "bad_request"},
		{"delete bad cas", false, "DELETE", "/v1/kv/k?cas=x", "", nil, 400, "bad_request"},
		{"delete empty key", false, "DELETE", "/v1/kv/", "", nil, 400, "bad_request"},
		{"kv wrong method", false, "POST", "/v1/kv/k", "", "v", 405, "method_not_allowed"},
		{"list limit 0", false, "GET", "/v1/kv?limit=0", "", nil, 400, "bad_request"},
		{"list limit text", false, "GET", "/v1/kv?limit=ten", "", nil, 400, "bad_request"},
		{"list limit too big", false, "GET", "/v1/kv?limit=10001", "", nil, 400, "bad_request"},
		{"list bad consistency", false, "GET", "/v1/kv?consistency=x", "", nil, 400, "bad_request"},
		{"list prefix too large", false, "GET", "/v1/kv?prefix=" + string(big(abi.MaxKeySize+1)), "", nil, 413, "too_large"},
		{"list bad query", false, "GET", "/v1/kv?prefix=%zz", "", nil, 400, "bad_request"},
		{"list limit twice", false, "GET", "/v1/kv?limit=1&limit=2", "", nil, 400, "bad_request"},
		{"list prefix twice", false, "GET", "/v1/kv?prefix=a&prefix=b", "", nil, 400, "bad_request"},
		{"list consistency twice", false, "GET", "/v1/kv?consistency=stale&consistency=leader", "", nil, 400, "bad_request"},
		{"txn malformed json", false, "POST", "/v1/txn", js, `{"ops":[`, 400, "bad_request"},
		{"txn not json", false, "POST", "/v1/txn", js, `SET k v`, 400, "bad_request"},
		{"txn wrong type", false, "POST", "/v1/txn", "text/plain", `{"ops":[]}`, 415, "unsupported_media_type"},
		{"txn missing ops", false, "POST", "/v1/txn", js, `{}`, 400, "bad_request"},
		{"txn unknown field", false, "POST", "/v1/txn", js, `{"ops":[],"atomic":true}`, 400, "bad_request"},
		{"txn trailing data", false, "POST", "/v1/txn", js, `{"ops":[]} {}`, 400, "bad_request"},
		{"txn ops twice", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"k","value":"1"}],"ops":[{"op":"DELETE","key":"k"}]}`, 400, "bad_request"},
		{"txn op field twice", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"k","value":"1","op":"DELETE"}]}`, 400, "bad_request"},
		{"txn ops twice in other case", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"k","value":"1"}],"Ops":[{"op":"SET","key":"k","value":"2"}]}`, 400, "bad_request"},
		{"txn value twice in other case", false, "POST", "/v1/txn", js, `{"ops":[{"op":"set","key":"k","value":"1","VALUE":"2"}]}`, 400, "bad_request"},
		{"txn msgpack ops twice", false, "POST", "/v1/txn", mpk, []byte("\x82\xa3ops\x90\xa3ops\x91\x82\xa2op\xa6DELETE\xa3key\xa1k"), 400, "bad_request"},
		{"txn unknown op", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"k","value":"1"},{"op":"FROB","key":"k"}]}`, 400, "bad_request"},
		{"txn GET op", false, "POST", "/v1/txn", js, `{"ops":[{"op":"GET","key":"k"}]}`, 400, "bad_request"},
		{"txn missing key", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","value":"1"}]}`, 400, "bad_request"},
		{"txn empty key", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"k","value":"1"},{"op":"SET","key":"","value":"1"}]}`, 400, "bad_request"},
		{"txn missing value", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"k"}]}`, 400, "bad_request"},
		{"txn cas missing version", false, "POST", "/v1/txn", js, `{"ops":[{"op":"CAS","key":"k","value":"1"}]}`, 400, "bad_request"},
		{"txn negative version", false, "POST", "/v1/txn", js, `{"ops":[{"op":"CAS","key":"k","value":"1","version":-1}]}`, 400, "bad_request"},
		{"txn bad base64", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key_b64":"!!","value":"1"}]}`, 400, "bad_request"},
		{"txn key and key_b64", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"k","key_b64":"aw==","value":"1"}]}`, 400, "bad_request"},
		{"txn key too large", false, "POST", "/v1/txn", js, `{"ops":[{"op":"SET","key":"` + string(big(abi.MaxKeySize+1)) + `","value":"1"}]}`, 413, "too_large"},
		{"txn body too large", false, "POST", "/v1/txn", js, big(abi.MaxCommandSize + 1), 413, "too_large"},
		{"txn malformed msgpack", false, "POST", "/v1/txn", mpk, []byte{0x81, 0xa3}, 400, "bad_request"},
		{"txn msgpack bomb", false, "POST", "/v1/txn", mpk, bomb, 400, "bad_request"},
		{"txn msgpack no ops", false, "POST", "/v1/txn", mpk, mpack(map[string]any{"op": "TXN"}), 400, "bad_request"},
		{"txn msgpack bad op", false, "POST", "/v1/txn", mpk, mpack(map[string]any{"ops": []any{map[string]any{"op": "LIST"}}}), 400, "bad_request"},
		{"insert malformed", false, "POST", "/insert-val", mpk, []byte{0x83, 0xa2, 'o'}, 400, "bad_request"},
		{"insert empty", false, "POST", "/insert-val", mpk, nil, 400, "bad_request"},
		{"insert bomb", false, "POST", "/insert-val", mpk, mapBomb, 400, "bad_request"},
		{"insert array bomb", false, "POST", "/insert-val", mpk, bomb, 400, "bad_request"},
		{"insert key twice", false, "POST", "/insert-val", mpk, []byte("\x84\xa2op\xa3SET\xa3key\xa1k\xa5value\xa1v\xa3key\xa3dk2"), 400, "bad_request"},
		{"insert op twice", false, "POST", "/insert-val", mpk, []byte("\x84\xa2op\xa3SET\xa3key\xa1k\xa5value\xa1v\xa2op\xa6DELETE"), 400, "bad_request"},
		{"insert json", false, "POST", "/insert-val", js, `{"op":"SET","key":"k","value":"v"}`, 415, "unsupported_media_type"},
		{"insert unknown op", false, "POST", "/insert-val", mpk, seedCommand("UPSERT", "k", "v"), 400, "bad_request"},
		{"insert GET", false, "POST", "/insert-val", mpk, seedCommand("GET", "k", ""), 400, "bad_request"},
		{"insert CAS", false, "POST", "/insert-val", mpk, mpack(map[string]any{"op": "CAS", "key": "k", "value": "v", "version": 0}), 400, "bad_request"},
		{"insert empty key", false, "POST", "/insert-val", mpk, seedCommand("SET", "", "v"), 400, "bad_request"},
		{"insert not a map", false, "POST", "/insert-val", mpk, mpack([]string{"SET", "k", "v"}), 400, "bad_request"},
		{"insert too large", false, "POST", "/insert-val", mpk, big(abi.MaxCommandSize + 1), 413, "too_large"},
		{"insert value too large", false, "POST", "/insert-val", mpk, seedCommand("SET", "k", string(big(abi.MaxValueSize+1))), 413, "too_large"},
		{"get-val no key", false, "GET", "/get-val", "", nil, 400, "bad_request"},
		{"get-val empty key", false, "GET", "/get-val?key=", "", nil, 400, "bad_request"},
		{"get-val bad consistency", false, "GET", "/get-val?key=k&consistency=x", "", nil, 400, "bad_request"},
		{"command malformed json", false, "POST", "/v1/plugins/kv/commands", js, `{"op":`, 400, "bad_request"},
		{"command empty", false, "POST", "/v1/plugins/kv/commands", js, ``, 400, "bad_request"},
		{"command too deep", false, "POST", "/v1/plugins/kv2/commands", js, deep, 400, "bad_request"},
		{"command bad $b64", false, "POST", "/v1/plugins/kv/commands", js, `{"op":"SET","key":"k","value":{"$b64":"%%"}}`, 400, "bad_request"},
		{"command huge number", false, "POST", "/v1/plugins/kv2/commands", js, `{"op":"SET","n":1e999}`, 400, "bad_request"},
		{"command wrong type", false, "POST", "/v1/plugins/kv/commands", "text/plain", `{}`, 415, "unsupported_media_type"},
		{"command unknown op", false, "POST", "/v1/plugins/kv/commands", js, `{"op":"FROB","key":"k"}`, 400, "bad_request"},
		{"command field twice", false, "POST", "/v1/plugins/kv/commands", js, `{"op":"SET","key":"k","value":"v","op":"DELETE"}`, 400, "bad_request"},
		{"command msgpack field twice", false, "POST", "/v1/plugins/kv/commands", mpk, []byte("\x84\xa2op\xa3SET\xa3key\xa1k\xa5value\xa1v\xa2op\xa6DELETE"), 400, "bad_request"},
		{"command kv2 msgpack field twice", false, "POST", "/v1/plugins/kv2/commands", mpk, []byte("\x84\xa2op\xa3SET\xa3key\xa1k\xa5value\xa1v\xa3key\xa3dk2"), 400, "bad_request"},
		{"command kv2 unknown op", false, "POST", "/v1/plugins/kv2/commands", js, `{"op":"FROB","key":"k"}`, 400, "bad_request"},
		{"command LIST", false, "POST", "/v1/plugins/kv/commands", js, `{"op":"LIST"}`, 400, "bad_request"},
		{"command malformed msgpack", false, "POST", "/v1/plugins/kv2/commands", mpk, []byte{0x82, 0xa2, 'o', 'p'}, 400, "bad_request"},
		{"command msgpack bomb", false, "POST", "/v1/plugins/kv2/commands", mpk, bomb, 400, "bad_request"},
		{"command body too large", false, "POST", "/v1/plugins/kv/commands", mpk, big(abi.MaxCommandSize + 1), 413, "too_large"},
		{"command bad plugin name", false, "POST", "/v1/plugins/Bad!/commands", js, `{}`, 400, "bad_request"},
		{"command unknown plugin", false, "POST", "/v1/plugins/nope/commands", js, `{"op":"SET","key":"k","value":"v"}`, 404, "not_found"},
		{"query bad consistency", false, "POST", "/v1/plugins/kv/queries?consistency=x", js, `{"op":"GET","key":"k"}`, 400, "bad_request"},
		{"query malformed", false, "POST", "/v1/plugins/kv/queries", js, `[`, 400, "bad_request"},
		{"query write op", false, "POST", "/v1/plugins/kv/queries", js, `{"op":"SET","key":"k","value":"v"}`, 400, "bad_request"},
		{"query unknown plugin", false, "POST", "/v1/plugins/nope/queries", js, `{"op":"GET","key":"k"}`, 404, "not_found"},
		{"deploy garbage", false, "PUT", "/v1/plugins/kv3", "application/wasm", "not wasm", 400, "bad_request"},
		{"deploy wrong type", false, "PUT", "/v1/plugins/kv3", "text/plain", kvwasm.Module, 415, "unsupported_media_type"},
		{"deploy bad name", false, "PUT", "/v1/plugins/KV", "application/wasm", kvwasm.Module, 400, "bad_request"},
		{"deploy too large", false, "PUT", "/v1/plugins/kv3", "application/wasm", big(abi.MaxModuleSize + 1), 413, "too_large"},
		{"remove default plugin", false, "DELETE", "/v1/plugins/kv", "", nil, 400, "bad_request"},
		{"remove bad drop_state", false, "DELETE", "/v1/plugins/kv2?drop_state=maybe", "", nil, 400, "bad_request"},
		{"remove unknown plugin", false, "DELETE", "/v1/plugins/nope", "", nil, 404, "not_found"},
		{"digest unknown plugin", false, "GET", "/v1/plugins/nope/digest", "", nil, 404, "not_found"},
		{"trust malformed", true, "POST", "/v1/cluster/trust", js, `{"line":`, 400, "bad_request"},
		{"trust missing line", true, "POST", "/v1/cluster/trust", js, `{}`, 400, "bad_request"},
		{"trust bad key", true, "POST", "/v1/cluster/trust", js, `{"line":"ssh-ed25519 AAAAnotakey n9"}`, 400, "bad_request"},
		{"trust wrong type", true, "POST", "/v1/cluster/trust", "text/plain", `{"line":"x"}`, 415, "unsupported_media_type"},
		{"trust on client API", false, "POST", "/v1/cluster/trust", js, `{"line":"x"}`, 400, "bad_request"},
		{"join missing id", true, "POST", "/v1/cluster/join", js, `{"address":"127.0.0.1:1"}`, 400, "bad_request"},
		{"join bad id", true, "POST", "/v1/cluster/join", js, `{"id":"bad id!","address":"127.0.0.1:1"}`, 400, "bad_request"},
		{"join unknown field", true, "POST", "/v1/cluster/join", js, `{"id":"n9","address":"127.0.0.1:1","voter":true}`, 400, "bad_request"},
		{"join untrusted node", true, "POST", "/v1/cluster/join", js, `{"id":"n9","address":"127.0.0.1:1"}`, 400, "bad_request"},
		{"seed join untrusted node", true, "GET", "/join?peerID=n9&peerAddress=127.0.0.1:1", "", nil, 400, "bad_request"},
		{"remove unknown member", true, "DELETE", "/v1/cluster/members/nope", "", nil, 404, "not_found"},
		{"seed join no params", true, "GET", "/join", "", nil, 400, "bad_request"},
		{"seed join no address", true, "GET", "/join?peerID=n9", "", nil, 400, "bad_request"},
		{"restore wrong type", false, "POST", "/v1/restore", js, `{}`, 415, "unsupported_media_type"},
		{"restore on a follower", false, "POST", "/v1/restore", "", "RKVSNAP1", 503, "not_leader"},
		{"unknown path", false, "GET", "/v2/kv/k", "", nil, 404, "not_found"},
		{"kv on mgmt", true, "GET", "/v1/kv/k", "", nil, 404, "not_found"},
		{"cluster wrong method", true, "PUT", "/v1/cluster", "", nil, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := digest(t, l)
			before2, _ := l.m.Node.StateDigest("kv2") // compare Digest only: a rejected command may still be a log entry
			base := f.url
			if c.mgmt {
				base = f.mgmt
			}
			var hdrs []string
			if c.ct != "" {
				hdrs = []string{"Content-Type", c.ct}
			}
			r := do(t, c.method, base+c.path, c.body, hdrs...)
			e := wantErr(t, r, c.status, c.code)
			if e.Error.Message == "" {
				t.Fatalf("no message: %s", r)
			}
			if d := digest(t, l); d != before {
				t.Fatalf("%s changed the kv state", c.name)
			}
			if d, _ := l.m.Node.StateDigest("kv2"); d.Digest != before2.Digest {
				t.Fatalf("%s changed the kv2 state", c.name)
			}
		})
	}
	t.Run("idempotency key twice", func(t *testing.T) {
		req, err := http.NewRequest("PUT", f.url+"/v1/kv/k", strings.NewReader("twice"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("Idempotency-Key", "key-a")
		req.Header.Add("Idempotency-Key", "key-b")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		wantErr(t, response{status: res.StatusCode, body: data, header: res.Header}, 400, "bad_request")
	})
	// The plugin list still has both plugins; k is untouched.
	if r := get(t, l, "k", "linearizable"); string(r.body) != "unchanged" {
		t.Fatalf("k: %s", r)
	}
}

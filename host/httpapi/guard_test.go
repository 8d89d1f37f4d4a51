package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// browserDo sends a request the way a browser would shape it: host, when
// set, replaces the Host header (DNS rebinding: the page's own name
// resolving to the node); hdrs are header name/value pairs.
func browserDo(t *testing.T, method, u, host, body string, hdrs ...string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
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
		t.Fatal(err)
	}
	return response{status: res.StatusCode, body: data, header: res.Header}
}

// TestBrowserGuard plays a web page attacking a node that has no token
// through a visitor's browser (guard.go): every request it makes is refused
// and writes nothing, while the same operations sent the way curl and the
// CLI send them still work, and a node with a token takes form bodies that
// carry it.
func TestBrowserGuard(t *testing.T) {
	t.Parallel() // a node of its own: beside the package's other tests
	tc := startCluster(t, 1)
	n := tc.leader()
	cfg := DefaultConfig()
	cfg.RequestTimeout = 30 * time.Second
	cfg.AllowedHosts = []string{"raftkv.internal.example:1234"}
	n = serveNode(t, n.m.Node, cfg, n.m)
	host := strings.TrimPrefix(n.url, "http://")
	txn := func(key string) string { return `{"ops":[{"op":"SET","key":"` + key + `","value":"pwned"}]}` }
	const form = "application/x-www-form-urlencoded"
	put(t, n, "kept", "v")

	// Refused: what a page can make a browser send.
	for _, c := range []struct {
		name, method, path, host, body string
		hdrs                           []string
		status                         int
		code                           string
	}{
		// A <form method=post enctype=text/plain> or fetch(no-cors) with a
		// form body: same-origin-looking (no Origin, as old browsers send).
		{"form body", "POST", "/v1/txn", "", txn("form"), []string{"Content-Type", form}, 415, "unsupported_media_type"},
		{"form body, charset", "POST", "/v1/txn", "", txn("form2"), []string{"Content-Type", form + "; charset=UTF-8"}, 415, "unsupported_media_type"},
		{"form trust", "POST", "/v1/cluster/trust", "", `{"line":"x"}`, []string{"Content-Type", form}, 415, "unsupported_media_type"},
		// A cross-origin fetch with a JSON body and the page's Origin.
		{"foreign Origin", "POST", "/v1/txn", "", txn("origin"),
			[]string{"Content-Type", "application/json", "Origin", "http://evil.example"}, 403, "forbidden"},
		{"foreign Origin, no type", "POST", "/v1/txn", "", txn("origin2"), []string{"Origin", "https://evil.example"}, 403, "forbidden"},
		{"cross-site fetch metadata", "POST", "/v1/txn", "", txn("site"),
			[]string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, 403, "forbidden"},
		{"same-site fetch metadata", "DELETE", "/v1/kv/kept", "", "", []string{"Sec-Fetch-Site", "same-site"}, 403, "forbidden"},
		// DNS rebinding: the browser believes it talks to the page's origin.
		{"rebinding write", "POST", "/v1/txn", "evil.example:" + port(host), txn("rebind"),
			[]string{"Content-Type", "application/json", "Origin", "http://evil.example:" + port(host), "Sec-Fetch-Site", "same-origin"}, 403, "forbidden"},
		{"rebinding read", "GET", "/v1/kv/kept", "evil.example:" + port(host), "", nil, 403, "forbidden"},
		{"rebinding metrics", "GET", "/metrics", "evil.example", "", nil, 403, "forbidden"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := browserDo(t, c.method, n.url+c.path, c.host, c.body, c.hdrs...)
			e := wantErr(t, r, c.status, c.code)
			t.Logf("%d %s", r.status, e.Error.Message)
		})
	}
	t.Run("the refusal names the type the endpoint takes", func(t *testing.T) {
		r := browserDo(t, "POST", n.url+"/v1/restore", "", "not a backup", "Content-Type", form)
		if e := wantErr(t, r, 415, "unsupported_media_type"); !strings.Contains(e.Error.Message, "application/octet-stream") {
			t.Fatalf("restore refusal: %s", e.Error.Message)
		}
	})
	// The seed's GET /join, from an <img> on another site: refused before
	// it reaches the cluster.
	join := n.mgmt + "/join?peerID=ghost&peerAddress=" + url.QueryEscape("127.0.5.9:9")
	t.Run("cross-site seed join", func(t *testing.T) {
		wantErr(t, browserDo(t, "GET", join, "", "", "Sec-Fetch-Site", "cross-site"), 403, "forbidden")
	})
	t.Run("rebinding seed join", func(t *testing.T) {
		wantErr(t, browserDo(t, "GET", join, "evil.example", ""), 403, "forbidden")
	})

	// Nothing was written, nothing was joined.
	for _, key := range []string{"form", "form2", "origin", "origin2", "site", "rebind"} {
		if r := get(t, n, key, "leader"); r.status != 404 {
			t.Errorf("key %q written by a refused request: %s", key, r)
		}
	}

	if r := get(t, n, "kept", "leader"); r.status != 200 || string(r.body) != "v" {
		t.Errorf("key kept changed by a refused request: %s", r)
	}

	// Allowed: curl and the CLI, the node's own /ui page, the names it has.
	wantOK(t, browserDo(t, "PUT", kvURL(n.url, "curl-put"), "", "v", "Content-Type", form)) // curl -X PUT --data-binary
	wantOK(t, browserDo(t, "POST", n.url+"/v1/txn", "", txn("json"), "Content-Type", "application/json"))
	wantOK(t, browserDo(t, "POST", n.url+"/v1/txn", "", txn("none")))
	wantOK(t, browserDo(t, "POST", n.url+"/v1/txn", "localhost:"+port(host), txn("localhost"), "Content-Type", "application/json",
		"Origin", "http://localhost:"+port(host), "Sec-Fetch-Site", "same-origin"))
	wantOK(t, browserDo(t, "GET", kvURL(n.url, "kept"), "raftkv.internal.example:"+port(host), ""))
	wantOK(t, browserDo(t, "GET", kvURL(n.url, "kept"), "", "", "Sec-Fetch-Site", "cross-site")) // a link to a read
	wantOK(t, browserDo(t, "GET", n.url+"/healthz", "evil.example", ""))                         // probes are public
	if r := browserDo(t, "POST", n.url+"/insert-val", "", string(seedCommand("SET", "seed", "v")), "Content-Type", msgpackCT); r.status != 200 {
		t.Fatalf("seed /insert-val: %s", r)
	}
	eventually(t, n, "seed", "v")

	// With a token, a request that carries it is not a browser's: its
	// form body is taken (curl -d with -H 'Authorization: …').
	cfg.Token = "a-long-enough-test-token"
	tok := serveNode(t, n.m.Node, cfg, n.m)
	wantErr(t, browserDo(t, "POST", tok.url+"/v1/txn", "", txn("notoken"), "Content-Type", "application/json"), 401, "unauthorized")
	wantOK(t, browserDo(t, "POST", tok.url+"/v1/txn", "", txn("token-form"), "Content-Type", form,
		"Authorization", "Bearer "+cfg.Token))
	eventually(t, n, "token-form", "pwned")
}

// port returns the port of host:port.
func port(hostport string) string { return hostport[strings.LastIndexByte(hostport, ':')+1:] }

func TestHostAllowed(t *testing.T) {
	a := &API{allowedHosts: normalizeHosts([]string{"Node1:8080", "db.example.", ""})}
	for host, want := range map[string]bool{
		"": true, "127.0.0.1:8080": true, "[::1]:8080": true, "10.1.2.3": true, "[fe80::1%25eth0]:80": true,
		"localhost:8080": true, "LOCALHOST.": true, "app.localhost:3000": true, "node1": true, "NODE1:9": true,
		"db.example:1": true, "evil.example": false, "127.0.0.1.evil.example": false, "localhost.evil.example": false,
		"node1.evil.example:8080": false, "xn--node1": false,
		"127.0.0.11:8080.evil.example": false, "127.0.0.1:99999": false, "127.0.0.1:": false,
	} {
		if got := a.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

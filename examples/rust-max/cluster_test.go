//go:build !wasip1

package max_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/cluster"
)

// httpDo sends one request and returns the status and body. Requests that
// a leader change can fail (503 no leader, 504 unknown outcome) are retried
// when retry is set: an offer is idempotent, so a retry after an unknown
// outcome is harmless.
func httpDo(t *testing.T, method, url, ctype string, body []byte, accept string, retry bool) (int, []byte) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		if retry && attempt < 5 && (resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout) {
			t.Logf("%s %s (attempt %d): %d %s", method, url, attempt, resp.StatusCode, b)
			time.Sleep(time.Second)
			continue
		}
		return resp.StatusCode, b
	}
}

// apiError is the HTTP API's error body.
type apiError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		PluginCode int    `json:"plugin_code"`
	} `json:"error"`
}

// TestClusterHTTP deploys the Rust plugin on a 3-node cluster (real nodes,
// Raft over the SSH transport) through a follower's HTTP API, sends JSON and
// MsgPack commands through every node's API, reads through a follower at
// every consistency level, checks the errors' statuses and codes, and
// checks that every replica holds the same state.
func TestClusterHTTP(t *testing.T) {
	wasm := buildMax(t)
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	var urls []string
	for _, mem := range c.Members {
		srv := httptest.NewServer(httpapi.New(mem.Node, httpapi.DefaultConfig()).Handler())
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	var followerURL string
	follower := c.Followers()[0]
	for i, mem := range c.Members {
		if mem == follower {
			followerURL = urls[i]
		}
	}

	// Deploy through the follower: PUT /v1/plugins/max.
	status, body := httpDo(t, "PUT", followerURL+"/v1/plugins/max", "application/wasm", wasm, "", true)
	var info struct {
		Name        string `json:"name"`
		Version     string `json:"version"`
		ABIVersion  int    `json:"abi_version"`
		Hash        string `json:"hash"`
		HasMigrate  bool   `json:"has_migrate"`
		ActiveSince uint64 `json:"active_since"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &info) != nil {
		t.Fatalf("deploy: %d %s", status, body)
	}
	if info.Name != "max" || info.Version != "1.0.0" || info.ABIVersion != 1 || info.HasMigrate || info.Hash != plugin.HashOf(wasm) {
		t.Fatalf("deployed: %s", body)
	}
	cluster.Poll(t, 30*time.Second, func() bool {
		for _, mem := range c.Members {
			found := false
			for _, p := range mem.Node.Plugins() {
				found = found || (p.Name == "max" && p.Hash == info.Hash)
			}
			if !found {
				return false
			}
		}
		return true
	}, "not every node runs the deployed module")

	// 30 offers of two marks through every node's API, out of order.
	want := map[string]int64{}
	var last mark
	for i := range 30 {
		key := []string{"acked", "score"}[i%2]
		v := int64((i * 7) % 31)
		cmd := fmt.Sprintf(`{"op":"offer","key":%q,"value":%d}`, key, v)
		status, body := httpDo(t, "POST", urls[i%3]+"/v1/plugins/max/commands", "application/json", []byte(cmd), "", true)
		if status != http.StatusOK || json.Unmarshal(body, &last) != nil {
			t.Fatalf("%s through %s: %d %s", cmd, urls[i%3], status, body)
		}
		raised := v > want[key] || i < 2
		if raised {
			want[key] = v
		}
		if last.Key != key || last.Max != want[key] || last.Raised != raised || last.Version <= info.ActiveSince {
			t.Fatalf("%s: %s, want max %d raised %v", cmd, body, want[key], raised)
		}
	}

	// A bin key (JSON {"$b64": ...}) that is not UTF-8 comes back as one.
	status, body = httpDo(t, "POST", followerURL+"/v1/plugins/max/commands", "", []byte(`{"op":"offer","key":{"$b64":"AP8="},"value":-5}`), "", true)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"key":{"$b64":"AP8="}`)) || !bytes.Contains(body, []byte(`"max":-5`)) {
		t.Fatalf("bin key: %d %s", status, body)
	}
	// A MsgPack command, answered in MsgPack.
	cmd, _ := msgpack.Marshal(map[string]any{"op": "offer", "key": "score", "value": 1000})
	status, body = httpDo(t, "POST", followerURL+"/v1/plugins/max/commands", "application/msgpack", cmd, "application/msgpack", true)
	if status != http.StatusOK || msgpack.Unmarshal(body, &last) != nil || last.Max != 1000 || !last.Raised {
		t.Fatalf("msgpack offer: %d %x", status, body)
	}
	want["score"] = 1000

	// Errors: the plugin's code and message, with the HTTP status the API
	// gives that code. A body that is not MsgPack is refused by the API.
	for _, e := range []struct {
		path, ctype, body string
		status            int
		code, msg         string
		pluginCode        int
	}{
		{"commands", "application/json", `{"op":"offer","key":"acked","value":1.5}`, 400, "bad_request", "value must be a signed 64-bit integer", 1},
		{"commands", "application/json", `{"op":"offer","key":"","value":1}`, 400, "bad_request", "key must be 1 to 255 bytes", 1},
		{"commands", "application/json", `{"op":"nope"}`, 400, "bad_request", `unknown command op "nope"`, 1},
		{"commands", "application/json", `{"key":"acked"}`, 400, "bad_request", "missing op", 1},
		{"commands", "application/json", `["offer","acked",1]`, 400, "bad_request", "malformed command: expected a map, got array", 1},
		{"commands", "application/msgpack", "\xc1", 400, "bad_request", "malformed MsgPack body", 0},
		{"queries", "application/json", `{"op":"get","key":"nobody"}`, 404, "not_found", `no mark "nobody"`, 2},
		{"queries", "application/json", `{"op":"list","limit":5000}`, 400, "bad_request", "limit must be 1 to 1000", 1},
	} {
		status, body := httpDo(t, "POST", followerURL+"/v1/plugins/max/"+e.path, e.ctype, []byte(e.body), "", false)
		var ae apiError
		if err := json.Unmarshal(body, &ae); err != nil || status != e.status || ae.Error.Code != e.code ||
			!bytes.HasPrefix([]byte(ae.Error.Message), []byte(e.msg)) || ae.Error.PluginCode != e.pluginCode {
			t.Errorf("%s %s: %d %s, want %d %s %q plugin_code %d", e.path, e.body, status, body, e.status, e.code, e.msg, e.pluginCode)
		}
	}

	// Refused before the log: the Rust SDK's Router exports raftkv_validate,
	// so a command that is not a map, has no op or names an unknown op is
	// answered 400 by the leader (here reached through the follower) and
	// never proposed: the commit index does not move. A good command then
	// moves it by one.
	var leaderURL string
	for i, mem := range c.Members {
		if mem == c.Leader() {
			leaderURL = urls[i]
		}
	}
	commitIndex := func() uint64 {
		status, body := httpDo(t, "GET", leaderURL+"/v1/status", "", nil, "", true)
		var st struct {
			CommitIndex uint64 `json:"commit_index"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &st) != nil {
			t.Fatalf("status: %d %s", status, body)
		}
		return st.CommitIndex
	}
	before := commitIndex()
	for _, bad := range []string{`{"op":"nope"}`, `{"key":"acked"}`, `["offer","acked",1]`, `{"op":"get","key":"acked"}`} {
		status, body := httpDo(t, "POST", followerURL+"/v1/plugins/max/commands", "application/json", []byte(bad), "", false)
		if status != http.StatusBadRequest || !bytes.Contains(body, []byte(`"bad_request"`)) {
			t.Errorf("%s: %d %s, want 400 bad_request", bad, status, body)
		}
	}
	if got := commitIndex(); got != before {
		t.Errorf("commands refused by raftkv_validate reached the log: commit index %d → %d", before, got)
	}
	status, body = httpDo(t, "POST", leaderURL+"/v1/plugins/max/commands", "application/json", []byte(`{"op":"offer","key":"score","value":1}`), "", true)
	if status != http.StatusOK {
		t.Fatalf("a good command: %d %s", status, body)
	}
	if got := commitIndex(); got != before+1 {
		t.Errorf("a good command: commit index %d → %d, want +1", before, got)
	}
	if err := json.Unmarshal(body, &last); err != nil {
		t.Fatal(err)
	}

	// Reads through the follower at every consistency level (stale once
	// the follower has applied the last offer).
	cluster.Poll(t, 20*time.Second, func() bool { return follower.Node.AppliedIndex() >= last.Version }, "follower behind")
	for _, level := range []string{"stale", "leader", "linearizable"} {
		for key, max := range want {
			q := fmt.Sprintf(`{"op":"get","key":%q}`, key)
			status, body := httpDo(t, "POST", followerURL+"/v1/plugins/max/queries?consistency="+level, "application/json", []byte(q), "", true)
			var got mark
			if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Max != max {
				t.Fatalf("%s %s: %d %s, want max %d", level, q, status, body, max)
			}
		}
	}
	status, body = httpDo(t, "POST", followerURL+"/v1/plugins/max/queries?consistency=leader", "application/json", []byte(`{"op":"list"}`), "", true)
	var l struct {
		Marks map[string]any `json:"marks"`
		Next  *string        `json:"next"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &l) != nil || len(l.Marks) != 3 || l.Next != nil ||
		l.Marks["acked"] != float64(want["acked"]) || l.Marks["score"] != float64(1000) {
		t.Fatalf("list: %d %s", status, body)
	}

	// Every replica has the same state at the same index.
	c.WaitConverged(3)
	var digests []string
	cluster.Poll(t, 20*time.Second, func() bool {
		digests = digests[:0]
		for _, u := range urls {
			status, body := httpDo(t, "GET", u+"/v1/plugins/max/digest", "", nil, "", false)
			var d struct {
				Digest       string `json:"digest"`
				AppliedIndex uint64 `json:"applied_index"`
				Keys         int    `json:"keys"`
			}
			if status != http.StatusOK || json.Unmarshal(body, &d) != nil {
				t.Fatalf("digest: %d %s", status, body)
			}
			digests = append(digests, fmt.Sprintf("%s@%d/%d", d.Digest, d.AppliedIndex, d.Keys))
		}
		return digests[0] == digests[1] && digests[0] == digests[2]
	}, "replicas disagree: %v", &digests)
	t.Logf("replicas agree: %s", digests[0])
}

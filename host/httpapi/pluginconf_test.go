package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestDeployPreconditionsAndLimits: over HTTP, a deploy onto an existing
// name needs the current hash (If-Match), a stale or missing one is 412 and
// changes nothing; a module of another raftkv_info name is 409 unless
// force=true; limits given at deploy (query parameters, the Raftkv-Limits
// header) and changed with PUT .../limits through a follower are what
// GET /v1/plugins/{name} shows on every node; limits out of range or past
// the node's memory cap are 400. kv upgraded to an unrelated module is
// restored by POST /v1/plugins/kv/reset with its state.
func TestDeployPreconditionsAndLimits(t *testing.T) {
	hostile := wasmbuild.Build(t, "../plugin/testdata/hostile")
	counter := wasmbuild.Build(t, "../plugin/testdata/nodescriber") // no raftkv_info name
	tc := startCluster(t, 3)
	l := tc.leader()
	f := tc.followers()[0]
	wasm := "Content-Type"

	var info host.PluginInfo
	decode(t, do(t, "PUT", l.url+"/v1/plugins/h?apply_fuel=1000000", hostile, wasm, "application/wasm", "Raftkv-Limits", "max_write_bytes=4096, memory_pages=64"), &info)
	want := plugin.DefaultLimits()
	want.ApplyFuel, want.MaxWriteBytes, want.MemoryPages = 1_000_000, 4096, 64
	if info.Limits != want || info.InfoName != "hostile" {
		t.Fatalf("deploy answered limits %+v info name %q, want %+v", info.Limits, info.InfoName, want)
	}
	// The hostile plugin takes raw text commands: through the Go API.
	res, err := tc.c.Leader().Node.Apply(t.Context(), "h", []byte("statebomb 10 1000"))
	if err != nil || res.Code.String() != "too_large" {
		t.Fatalf("statebomb past the 4 KiB write quota: %v %v", res, err)
	}
	var got host.PluginInfo
	decode(t, do(t, "GET", l.url+"/v1/plugins/h", nil), &got)
	if got.Counters.QuotaExceeded != 1 || got.Limits != want {
		t.Fatalf("GET /v1/plugins/h after a refused statebomb: %+v", got)
	}

	// Again without If-Match, with a stale one, with a bad one: 412.
	wantErr(t, do(t, "PUT", l.url+"/v1/plugins/h", counter, wasm, "application/wasm"), http.StatusPreconditionFailed, "precondition_failed")
	wantErr(t, do(t, "PUT", f.url+"/v1/plugins/h", counter, wasm, "application/wasm", "If-Match", `"`+strings.Repeat("0", 64)+`"`), http.StatusPreconditionFailed, "precondition_failed")
	wantErr(t, do(t, "PUT", l.url+"/v1/plugins/none", counter, wasm, "application/wasm", "If-Match", "*"), http.StatusPreconditionFailed, "precondition_failed")
	// The same module again is a no-op, not a conflict: a retried deploy.
	wantOK(t, do(t, "PUT", l.url+"/v1/plugins/h", hostile, wasm, "application/wasm"))

	// Another raftkv_info name: 409 unless forced.
	ver := wasmbuild.Build(t, "../testdata/versioned", "-X main.version=1")
	e := wantErr(t, do(t, "PUT", f.url+"/v1/plugins/h", ver, wasm, "application/wasm", "If-Match", strconv.Quote(info.Hash)), http.StatusConflict, "conflict")
	if !strings.Contains(e.Error.Message, "versioned") || !strings.Contains(e.Error.Message, "hostile") {
		t.Errorf("conflict message %q does not name both modules", e.Error.Message)
	}

	// Bad limits: 400, and nothing changes.
	for _, q := range []string{"apply_fuel=1", "memory_pages=0", "memory_pages=100000", "apply_fuel=x", "bogus_limit=1"} {
		r := do(t, "PUT", l.url+"/v1/plugins/h2?"+q, hostile, wasm, "application/wasm")
		if q == "bogus_limit=1" { // unknown parameters are ignored as elsewhere in the API
			wantOK(t, r)
			continue
		}
		wantErr(t, r, http.StatusBadRequest, "bad_request")
	}
	wantErr(t, do(t, "PUT", f.url+"/v1/plugins/h/limits", `{"memory_pages": 4096}`), http.StatusBadRequest, "bad_request")
	wantErr(t, do(t, "PUT", f.url+"/v1/plugins/h/limits", `{"apply_fuel": "lots"}`), http.StatusBadRequest, "bad_request")

	// Limits changed through a follower, seen on every node.
	decode(t, do(t, "PUT", f.url+"/v1/plugins/h/limits", `{"max_write_bytes": 1048576}`, "If-Match", strconv.Quote(info.Hash)), &info)
	want.MaxWriteBytes = 1 << 20
	if info.Limits != want {
		t.Fatalf("PUT limits answered %+v, want %+v", info.Limits, want)
	}
	for _, n := range tc.nodes {
		eventuallyLimits(t, n, "h", want)
	}
	if res, err := tc.c.Leader().Node.Apply(t.Context(), "h", []byte("statebomb 10 1000")); err != nil || !res.OK() {
		t.Fatalf("statebomb within the new quota: %v %v", res, err)
	}
	decode(t, do(t, "GET", f.url+"/v1/plugins/h", nil), &got)
	if got.Hash != info.Hash || got.ActiveSince == 0 || got.Limits != want {
		t.Fatalf("GET /v1/plugins/h: %+v", got)
	}
	wantErr(t, do(t, "GET", f.url+"/v1/plugins/nope", nil), http.StatusNotFound, "not_found")

	// kv replaced by an unrelated module, then reset to the built-in one.
	put(t, l, "keep", "1")
	var kv host.PluginInfo
	decode(t, do(t, "GET", l.url+"/v1/plugins/kv", nil), &kv)
	wantOK(t, do(t, "PUT", l.url+"/v1/plugins/kv?force=true", counter, wasm, "application/wasm", "If-Match", strconv.Quote(kv.Hash)))
	if r := get(t, l, "keep", "leader"); r.status == 200 {
		t.Fatalf("kv still answers after it was replaced: %s", r)
	}
	wantErr(t, do(t, "POST", l.url+"/v1/plugins/h/reset", nil), http.StatusBadRequest, "bad_request")
	decode(t, do(t, "POST", f.url+"/v1/plugins/kv/reset", nil), &info)
	if info.Hash != kv.Hash || info.Limits != plugin.DefaultLimits() {
		t.Fatalf("reset answered %+v, want the built-in module %s", info, kv.Hash)
	}
	eventually(t, l, "keep", "1")
}

func eventuallyLimits(t *testing.T, n *node, name string, want plugin.Limits) {
	t.Helper()
	cluster.Poll(t, 20*time.Second, func() bool {
		var got host.PluginInfo
		r := do(t, "GET", n.url+"/v1/plugins/"+name, nil)
		return r.status == 200 && json.Unmarshal(r.body, &got) == nil && got.Limits == want
	}, "%s: limits of %s never became %+v", n.m.ID, name, want)
}

// TestDeployTrusted: PUT /v1/plugins/{name}?trusted=true, sent to a
// follower, deploys the module trusted on every node (GET shows
// "trusted": true in its limits); PUT .../limits keeps the flag; a deploy
// without it, even of the same module, makes the plugin metered again
// (trust is given per deploy, not kept from the module before); a bad
// value is 400.
func TestDeployTrusted(t *testing.T) {
	hostile := wasmbuild.Build(t, "../plugin/testdata/hostile")
	tc := startCluster(t, 3)
	f := tc.followers()[0]
	wasm := "Content-Type"
	trusted := func(n *node) *bool { // nil: not shown, or not deployed there yet
		var got struct {
			Limits struct {
				Trusted *bool `json:"trusted"`
			} `json:"limits"`
		}
		if r := do(t, "GET", n.url+"/v1/plugins/h", nil); r.status != 200 || json.Unmarshal(r.body, &got) != nil {
			return nil
		}
		return got.Limits.Trusted
	}
	everywhere := func(want bool) {
		t.Helper()
		for _, n := range tc.nodes {
			cluster.Poll(t, 20*time.Second, func() bool {
				got := trusted(n)
				return got != nil && *got == want
			}, "%s: GET /v1/plugins/h never showed trusted %v", n.m.ID, want)
		}
	}

	wantErr(t, do(t, "PUT", f.url+"/v1/plugins/h?trusted=maybe", hostile, wasm, "application/wasm"), http.StatusBadRequest, "bad_request")
	var info host.PluginInfo
	decode(t, do(t, "PUT", f.url+"/v1/plugins/h?trusted=true", hostile, wasm, "application/wasm"), &info)
	if !info.Limits.Trusted {
		t.Fatalf("a trusted deploy answered %+v", info.Limits)
	}
	everywhere(true)
	decode(t, do(t, "PUT", f.url+"/v1/plugins/h/limits", `{"max_write_bytes": 8192}`), &info)
	if !info.Limits.Trusted || info.Limits.MaxWriteBytes != 8192 {
		t.Fatalf("PUT limits of a trusted plugin answered %+v", info.Limits)
	}
	everywhere(true)
	decode(t, do(t, "PUT", f.url+"/v1/plugins/h", hostile, wasm, "application/wasm", "If-Match", strconv.Quote(info.Hash)), &info)
	if info.Limits.Trusted || info.Limits.MaxWriteBytes != 8192 {
		t.Fatalf("deployed again without trusted=true: %+v, want metered with the other limits kept", info.Limits)
	}
	everywhere(false)
}

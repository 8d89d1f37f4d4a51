package httpapi

import (
	"strings"
	"testing"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestDeployPluginWithoutDescriber: sdk.Describer is optional, so the
// smallest SDK plugin deploys to a running node and serves commands and
// queries under the name it is deployed under.
func TestDeployPluginWithoutDescriber(t *testing.T) {
	t.Parallel() // a node of its own: beside the package's other tests
	wasm := wasmbuild.Build(t, "../plugin/testdata/nodescriber")
	tc := startCluster(t, 1)
	l := tc.leader()
	var info host.PluginInfo
	r := do(t, "PUT", l.url+"/v1/plugins/counter", wasm, "Content-Type", "application/wasm")
	decode(t, r, &info)
	if info.Name != "counter" || info.Version != "" || info.Description != "" || info.Hash == "" || info.ABIVersion != 1 {
		t.Fatalf("deploy answered %+v", info)
	}
	for i, want := range []string{"1", "2"} {
		r := do(t, "POST", l.url+"/v1/plugins/counter/commands", `{}`)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != want {
			t.Fatalf("command %d: %s, want %s", i, r, want)
		}
	}
	r = do(t, "POST", l.url+"/v1/plugins/counter/queries", `{}`)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != "2" {
		t.Fatalf("query: %s, want 2", r)
	}
	var list struct{ Plugins []host.PluginInfo }
	decode(t, do(t, "GET", l.url+"/v1/plugins", nil), &list)
	found := false
	for _, p := range list.Plugins {
		found = found || (p.Name == "counter" && p.Hash == info.Hash)
	}
	if !found {
		t.Fatalf("GET /v1/plugins does not list counter: %+v", list.Plugins)
	}
}

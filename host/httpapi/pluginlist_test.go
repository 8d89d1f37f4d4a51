package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// TestPluginListAllAndConsistency: GET /v1/plugins?all=true lists the kept
// state of a plugin removed without drop_state (keys and bytes), DELETE
// ?drop_state=true on the removed plugin deletes it; consistency=leader and
// linearizable answer the leader's table on any node (a follower asks the
// leader; see TestPluginListFollowerAnswersLeaderView); stale (the
// default) is answered by any node; a bad level or all value is 400.
func TestPluginListAllAndConsistency(t *testing.T) {
	tc := startCluster(t, 3)
	l, f := tc.leader(), tc.followers()[0]
	wantOK(t, do(t, "PUT", f.url+"/v1/plugins/kv2", kvwasm.Module, "Content-Type", "application/wasm"))
	wantOK(t, do(t, "POST", f.url+"/v1/plugins/kv2/commands", `{"op":"SET","key":"ab","value":"cde"}`, "Content-Type", "application/json"))
	if r := do(t, "DELETE", f.url+"/v1/plugins/kv2", nil); r.status != http.StatusOK || string(r.body) != "{\"state_kept\":true}\n" {
		t.Fatalf("DELETE without drop_state: %s", r)
	}

	type list struct {
		Plugins    []host.PluginInfo `json:"plugins"`
		KeptStates *[]host.KeptState `json:"kept_states"`
	}
	var got list
	decode(t, do(t, "GET", l.url+"/v1/plugins?all=true&consistency=linearizable", nil), &got)
	if got.KeptStates == nil || len(*got.KeptStates) != 1 || (*got.KeptStates)[0] != (host.KeptState{Name: "kv2", Keys: 1, Bytes: 5}) || len(got.Plugins) != 1 {
		t.Fatalf("list --all on the leader: %+v", got)
	}
	got = list{}
	decode(t, do(t, "GET", l.url+"/v1/plugins?consistency=strong", nil), &got)
	if got.KeptStates != nil || len(got.Plugins) != 1 || got.Plugins[0].Name != "kv" {
		t.Fatalf("list without all: %+v", got)
	}
	for _, level := range []string{"leader", "linearizable"} {
		got = list{}
		decode(t, do(t, "GET", f.url+"/v1/plugins?all=1&consistency="+level, nil), &got)
		if got.KeptStates == nil || len(*got.KeptStates) != 1 || (*got.KeptStates)[0].Name != "kv2" || len(got.Plugins) != 1 {
			t.Errorf("%s list --all on a follower: %+v", level, got)
		}
	}
	decode(t, do(t, "GET", f.url+"/v1/plugins", nil), &got) // stale by default
	wantErr(t, do(t, "GET", l.url+"/v1/plugins?consistency=bogus", nil), http.StatusBadRequest, "bad_request")
	wantErr(t, do(t, "GET", l.url+"/v1/plugins?all=maybe", nil), http.StatusBadRequest, "bad_request")

	if r := do(t, "DELETE", f.url+"/v1/plugins/kv2?drop_state=true", nil); r.status != http.StatusOK || string(r.body) != "{\"state_kept\":false}\n" {
		t.Fatalf("DELETE with drop_state: %s", r)
	}
	got = list{}
	decode(t, do(t, "GET", l.url+"/v1/plugins?all=true&consistency=linearizable", nil), &got)
	if got.KeptStates == nil || len(*got.KeptStates) != 0 {
		t.Fatalf("after drop_state: %+v", got)
	}
	wantErr(t, do(t, "DELETE", f.url+"/v1/plugins/kv2?drop_state=true", nil), http.StatusNotFound, "not_found")
}

// TestPluginListFollowerAnswersLeaderView: right after a deploy through the
// leader, a follower asked for the plugin list (or GET /v1/plugins/{name})
// at consistency=leader or linearizable lists the new plugin, and what it
// answers is the leader's table: the plugin's counters are the leader's
// (which ran queries the follower did not), not the follower's own.
func TestPluginListFollowerAnswersLeaderView(t *testing.T) {
	// kv.wasm with a custom section appended: another hash, so the nodes
	// meter it (the default plugin's own module runs unmetered) and count
	// the fuel each node's queries use.
	section := append([]byte{4}, "test:metered"...)
	metered := append(append(append([]byte{}, kvwasm.Module...), 0, byte(len(section))), section...)
	tc := startCluster(t, 3)
	l, f := tc.leader(), tc.followers()[0]
	var info host.PluginInfo
	decode(t, do(t, "PUT", l.url+"/v1/plugins/kv2", metered, "Content-Type", "application/wasm"), &info)
	type list struct {
		Plugins []host.PluginInfo `json:"plugins"`
	}
	find := func(ps []host.PluginInfo, name string) (host.PluginInfo, bool) {
		for _, p := range ps {
			if p.Name == name {
				return p, true
			}
		}
		return host.PluginInfo{}, false
	}
	for _, level := range []string{"leader", "linearizable"} {
		var got list
		decode(t, do(t, "GET", f.url+"/v1/plugins?consistency="+level, nil), &got)
		if p, ok := find(got.Plugins, "kv2"); !ok || p.Hash != info.Hash || p.ActiveSince != info.ActiveSince {
			t.Fatalf("%s list on a follower right after the deploy: %+v, want kv2 %s since %d", level, got, info.Hash, info.ActiveSince)
		}
		var one host.PluginInfo
		decode(t, do(t, "GET", f.url+"/v1/plugins/kv2?consistency="+level, nil), &one)
		if one.Hash != info.Hash || one.ActiveSince != info.ActiveSince {
			t.Fatalf("GET /v1/plugins/kv2?consistency=%s on a follower: %+v", level, one)
		}
	}

	// Queries on the leader alone make its counters differ from the
	// follower's; the follower's leader and linearizable answers carry the
	// leader's.
	wantOK(t, do(t, "POST", l.url+"/v1/plugins/kv2/commands", `{"op":"SET","key":"k","value":"v"}`, "Content-Type", "application/json"))
	for range 3 {
		wantOK(t, do(t, "POST", l.url+"/v1/plugins/kv2/queries?consistency=stale", `{"op":"GET","key":"k"}`, "Content-Type", "application/json"))
	}
	fuel := func(n *node, query string) uint64 {
		var got list
		decode(t, do(t, "GET", n.url+"/v1/plugins"+query, nil), &got)
		p, ok := find(got.Plugins, "kv2")
		if !ok {
			t.Fatalf("list%s on %s: no kv2 in %+v", query, n.m.ID, got)
		}
		return p.Counters.FuelUsed
	}
	// The follower may still be loading kv2, or applying the SET.
	cluster.Poll(t, 60*time.Second, func() bool {
		var got list
		decode(t, do(t, "GET", f.url+"/v1/plugins", nil), &got)
		p, ok := find(got.Plugins, "kv2")
		return ok && p.Keys == 1
	}, "the follower did not apply kv2's deploy and SET")
	leaderFuel, followerFuel := fuel(l, "?consistency=stale"), fuel(f, "?consistency=stale")
	if leaderFuel == followerFuel {
		t.Fatalf("the leader's kv2 used %d fuel, the follower's too: the queries did not tell them apart", leaderFuel)
	}
	for _, level := range []string{"leader", "linearizable"} {
		if got := fuel(f, "?consistency="+level); got != leaderFuel {
			t.Errorf("%s list on the follower: kv2 used %d fuel, want the leader's %d (the follower's own is %d)", level, got, leaderFuel, followerFuel)
		}
		var one host.PluginInfo
		decode(t, do(t, "GET", f.url+"/v1/plugins/kv2?consistency="+level, nil), &one)
		if one.Counters.FuelUsed != leaderFuel {
			t.Errorf("GET /v1/plugins/kv2?consistency=%s on the follower: %d fuel, want the leader's %d", level, one.Counters.FuelUsed, leaderFuel)
		}
	}
	if got := fuel(f, ""); got != followerFuel {
		t.Errorf("the default (stale) list on the follower: %d fuel, want its own %d", got, followerFuel)
	}
	wantErr(t, do(t, "GET", f.url+"/v1/plugins/kv2?consistency=bogus", nil), http.StatusBadRequest, "bad_request")
}

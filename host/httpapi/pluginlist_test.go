package httpapi

import (
	"net/http"
	"testing"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// TestPluginListAllAndConsistency: GET /v1/plugins?all=true lists the kept
// state of a plugin removed without drop_state (keys and bytes), DELETE
// ?drop_state=true on the removed plugin deletes it; consistency=leader and
// linearizable are answered by the leader, and a follower answers 503
// not_leader naming it (and its URL, when its API address is known); stale (the default) is answered by any node; a bad
// level or all value is 400.
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
		r := do(t, "GET", f.url+"/v1/plugins?consistency="+level, nil)
		e := wantErr(t, r, http.StatusServiceUnavailable, "not_leader")
		if id := l.m.ID; e.Error.Leader != id { // the leader's API address too, when the cluster knows it
			t.Errorf("%s list on a follower: %s, want the leader %s named", level, r, id)
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

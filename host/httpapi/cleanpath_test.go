package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// TestUncleanPathRefused: a path the router would clean (//, /./, /../) is
// refused with 400, not redirected. A 307 to the cleaned path made a
// client that follows redirects (curl -L, Go's http.Client, which repeats
// a PUT with its body) write another key: PUT /v1/kv/a/../c wrote c
// (attacker audit). Keys with such segments stay writable percent-encoded.
func TestUncleanPathRefused(t *testing.T) {
	t.Parallel() // a node of its own: beside the package's other tests
	tc := startCluster(t, 1)
	l := tc.leader()
	for _, p := range []string{"/v1/kv/a/../c", "/v1/kv/a//b", "/v1/kv/a/./b", "/v1/kv/a/..", "/v1//kv/c"} {
		for _, method := range []string{"PUT", "GET", "DELETE"} {
			var body []byte
			if method == "PUT" {
				body = []byte("wrong key")
			}
			r := do(t, method, l.url+p, body)
			e := wantErr(t, r, http.StatusBadRequest, "bad_request")
			if !strings.Contains(e.Error.Message, "not clean") {
				t.Fatalf("%s %s: %q", method, p, e.Error.Message)
			}
		}
	}
	if r := do(t, "GET", l.url+"/v1/kv/c", nil); r.status != http.StatusNotFound {
		t.Fatalf("a refused PUT wrote the cleaned key: %s", r)
	}
	// Percent-encoded, the same keys are keys like any other.
	wantOK(t, do(t, "PUT", l.url+"/v1/kv/a%2F..%2Fc", []byte("v")))
	if r := do(t, "GET", l.url+"/v1/kv/a%2F..%2Fc", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), "v") {
		t.Fatalf("GET a/../c percent-encoded: %s", r)
	}
}

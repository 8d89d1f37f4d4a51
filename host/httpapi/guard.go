package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The browser guard. A node without a token answers every process that can
// reach its port, which on a loopback address means the local users. One
// remote party can still reach a loopback port: a web page, through the
// browser of someone on that machine. It can make the browser send
//
//   - "simple" cross-origin requests (GET, HEAD, and POST with a form,
//     multipart or text/plain body, or none) without asking the server
//     first: the page cannot read the answer, but a write is done;
//   - any request, answers readable, to a DNS name it controls that it
//     re-points at 127.0.0.1 after the page has loaded (DNS rebinding): the
//     browser then sees the node as the page's own origin.
//
// So a node with no token refuses, on every endpoint that would need the
// token: a Host that is not an address of the node (rebinding: the Host is
// the attacker's name); a request that the browser marks as cross-origin
// (Sec-Fetch-Site, or an Origin that is not the Host), for every method but
// GET and HEAD and for the seed's GET /join, which changes the cluster; and
// a POST body with a form, multipart or text/plain Content-Type, the types a
// page can send without a preflight (PUT and DELETE always need one, which
// raftkv never grants, so `curl -X PUT --data-binary` keeps working). With a
// token none of this applies: a browser never adds a bearer token by itself,
// and every such request is already refused without it. SECURITY.md explains
// the choice.

// crossOrigin is net/http's check of Sec-Fetch-Site and Origin.
var crossOrigin = http.NewCrossOriginProtection()

// guardBrowser returns the error for a request the browser guard refuses,
// or nil. changes marks a GET that changes the cluster (the seed's /join).
func (a *API) guardBrowser(r *http.Request, changes bool) error {
	if a.token != nil {
		return nil // the caller checked the token: no browser sends it by itself
	}
	if !a.hostAllowed(r.Host) {
		return &httpError{Status: http.StatusForbidden, Code: "forbidden", Message: fmt.Sprintf(
			"Host %q is not an address of this node (refused against DNS rebinding): use its IP address or localhost, "+
				"list the name in --allowed-hosts, or require a token (--token-file)", r.Host)}
	}
	check := r
	if changes && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// CrossOriginProtection lets every GET through; this one writes.
		post := *r
		post.Method = http.MethodPost
		check = &post
	}
	if err := crossOrigin.Check(check); err != nil {
		return &httpError{Status: http.StatusForbidden, Code: "forbidden", Message: fmt.Sprintf(
			"cross-origin request refused (%v): a web page cannot use a node that has no token", err)}
	}
	if r.Method == http.MethodPost && browserSimpleType(r.Header.Get("Content-Type")) {
		return &httpError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: fmt.Sprintf(
			"Content-Type %s is refused on a node without a token, because any web page can send it: send %s",
			r.Header.Get("Content-Type"), typeHint(r.URL.Path))}
	}
	return nil
}

// browserSimpleType reports whether a Content-Type is one of the three a
// page may send cross-origin without a CORS preflight (the Fetch standard's
// CORS-safelisted Content-Type values), parameters ignored.
func browserSimpleType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

// hostAllowed reports whether a Host header names this node: an IP address
// (a page cannot rebind an address, only a name), localhost or a name under
// .localhost (browsers resolve those to loopback themselves), or a name in
// Config.AllowedHosts. An empty Host (HTTP/1.0) comes from no browser.
func (a *API) hostAllowed(host string) bool {
	if host == "" {
		return true
	}
	name := host
	if h, port, err := net.SplitHostPort(host); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false // "127.0.0.1:8080.evil.example" is no address of ours
		}
		name = h
	}
	name = strings.TrimSuffix(strings.ToLower(strings.Trim(name, "[]")), ".")
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	return slices.Contains(a.allowedHosts, name)
}

// normalizeHosts lower-cases names and drops ports and trailing dots.
func normalizeHosts(names []string) []string {
	var out []string
	for _, n := range names {
		if h, _, err := net.SplitHostPort(n); err == nil {
			n = h
		}
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// typeHint names the Content-Type a POST to path takes, for the refusal of
// a browser-sendable one.
func typeHint(path string) string {
	switch {
	case path == "/v1/restore":
		return "Content-Type: application/octet-stream (curl --data-binary @FILE -H 'Content-Type: application/octet-stream')"
	case path == "/insert-val":
		return "Content-Type: application/msgpack"
	}
	return "Content-Type: application/json (curl -H 'Content-Type: application/json', or --json), or application/msgpack where the endpoint takes it"
}

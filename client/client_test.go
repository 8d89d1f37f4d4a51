package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/client"
)

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestKV(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	keys := []string{"kv/a/b", "kv/\xff\x00bin", ".", "..", "kv/space key", "kv/100%"}
	for i, k := range keys {
		v, err := c.Put(ctx, k, []byte{byte(i), 0xff})
		if err != nil {
			t.Fatalf("Put %q: %v", k, err)
		}
		for _, lvl := range []client.Consistency{client.Leader, client.Linearizable} {
			it, err := c.Get(ctx, k, client.WithConsistency(lvl))
			if err != nil || it.Version != v || string(it.Value) != string([]byte{byte(i), 0xff}) || it.Key != k {
				t.Fatalf("Get %q at %s: %+v, %v (version %d)", k, lvl, it, err, v)
			}
		}
	}
	v, err := c.Put(ctx, "kv/cas", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CAS(ctx, "kv/cas", v+1, []byte("x")); !client.IsConflict(err) {
		t.Fatalf("CAS at a wrong version: %v", err)
	}
	var ae *client.Error
	if _, err := c.CAS(ctx, "kv/cas", v+1, []byte("x")); !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "conflict" || !strings.Contains(ae.Message, "version") {
		t.Fatalf("CAS error: %#v", err)
	}
	v2, err := c.CAS(ctx, "kv/cas", v, []byte("x"))
	if err != nil || v2 <= v {
		t.Fatalf("CAS: %d, %v", v2, err)
	}
	if _, err := c.CompareAndDelete(ctx, "kv/cas", v); !client.IsConflict(err) {
		t.Fatalf("CompareAndDelete at a wrong version: %v", err)
	}
	if ok, err := c.CompareAndDelete(ctx, "kv/cas", v2); !ok || err != nil {
		t.Fatalf("CompareAndDelete: %v %v", ok, err)
	}
	if ok, err := c.Delete(ctx, "kv/cas"); ok || err != nil {
		t.Fatalf("Delete of a deleted key: %v %v", ok, err)
	}
	if _, err := c.Get(ctx, "kv/cas"); !client.IsNotFound(err) {
		t.Fatalf("Get of a deleted key: %v", err)
	}
	// Listing follows pages.
	for i := range 25 {
		if _, err := c.Put(ctx, "list/"+string(rune('a'+i)), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.List(ctx, client.ListRequest{Prefix: "list/", Limit: 10})
	if err != nil || len(page.Items) != 10 || !page.More || page.Next != "list/k" {
		t.Fatalf("List page: %d items, more %v, next %q, %v", len(page.Items), page.More, page.Next, err)
	}
	all, err := c.ListAll(ctx, client.ListRequest{Prefix: "list/", Limit: 7}, 0, client.WithConsistency(client.Linearizable))
	if err != nil || len(all) != 25 || all[24].Key != "list/y" || all[24].Value[0] != 24 {
		t.Fatalf("ListAll: %d items, %v", len(all), err)
	}
	if some, err := c.ListAll(ctx, client.ListRequest{Prefix: "list/"}, 12); err != nil || len(some) != 12 {
		t.Fatalf("ListAll max 12: %d, %v", len(some), err)
	}
	// Transactions: all or nothing, the failing op named.
	_, err = c.Txn(ctx, []client.Op{client.SetOp("txn/x", []byte("1")), client.CASOp("txn/y", 99, []byte("2"))})
	if !client.IsConflict(err) || !strings.Contains(err.Error(), "ops[1]") {
		t.Fatalf("failing Txn: %v", err)
	}
	if _, err := c.Get(ctx, "txn/x"); !client.IsNotFound(err) {
		t.Fatalf("a failed Txn applied its first op: %v", err)
	}
	res, err := c.Txn(ctx, []client.Op{client.SetOp("txn/x", []byte("1")), client.CASOp("txn/y", 0, []byte("\xff")),
		client.DeleteOp("txn/x"), client.CompareAndDeleteOp("txn/none", 5)})
	if err == nil || !client.IsConflict(err) {
		t.Fatalf("Txn with a conditional delete of an absent key: %v %v", res, err)
	}
	res, err = c.Txn(ctx, []client.Op{client.SetOp("txn/x", []byte("1")), client.CASOp("txn/y", 0, []byte("\xff")), client.DeleteOp("txn/x")})
	if err != nil || len(res) != 3 || res[0].Version == 0 || res[1].Version == 0 || !res[2].Deleted {
		t.Fatalf("Txn: %+v, %v", res, err)
	}
	if it, err := c.Get(ctx, "txn/y"); err != nil || string(it.Value) != "\xff" {
		t.Fatalf("Txn's binary value: %q %v", it.Value, err)
	}
}

func TestErrorsKeepTheAPICodes(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	cases := []struct {
		call   func() error
		status int
		code   string
		is     error
	}{
		{func() error { _, err := c.Get(ctx, "errors/absent"); return err }, 404, "not_found", client.ErrNotFound},
		{func() error { _, err := c.Get(ctx, "x", client.WithConsistency("eventual")); return err }, 400, "bad_request", client.ErrBadRequest},
		{func() error { _, err := c.Put(ctx, strings.Repeat("k", 5000), nil); return err }, 413, "too_large", client.ErrTooLarge},
		{func() error { _, err := c.Command(ctx, "nosuch", []byte{0x80}); return err }, 404, "not_found", client.ErrNotFound},
		{func() error { return c.RemovePlugin(ctx, "kv", false) }, 400, "bad_request", client.ErrBadRequest},
		{func() error { _, err := c.Deploy(ctx, "broken", []byte("not wasm")); return err }, 400, "bad_request", client.ErrBadRequest},
	}
	for i, tc := range cases {
		err := tc.call()
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code || !errors.Is(err, tc.is) || ae.Message == "" || ae.Endpoint == "" {
			t.Errorf("case %d: %#v, want %d %s", i, err, tc.status, tc.code)
		}
	}
	// A plugin's own error code is kept.
	_, err := c.Query(ctx, "kv", []byte{0x81, 0xa2, 'o', 'p', 0xa3, 'G', 'E', 'T'}) // {"op":"GET"}: no key
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != "bad_request" || !ae.HasPluginCode || ae.PluginCode != 1 {
		t.Fatalf("plugin error: %#v", err)
	}
}

func TestPlugins(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	ps, err := c.Plugins(ctx)
	if err != nil || len(ps) == 0 || ps[0].Name != "kv" || len(ps[0].Hash) != 64 {
		t.Fatalf("Plugins: %+v, %v", ps, err)
	}
	if ps, err := c.Plugins(ctx, client.WithConsistency(client.Linearizable)); err != nil || len(ps) == 0 || ps[0].Name != "kv" {
		t.Fatalf("Plugins, linearizable: %+v, %v", ps, err)
	}
	if kept, err := c.KeptStates(ctx, client.WithConsistency(client.Leader)); err != nil || len(kept) != 0 {
		t.Fatalf("KeptStates: %+v, %v", kept, err)
	}
	// Every node answers a leader or linearizable list (a follower asks the
	// leader), also through a client pinned to it.
	for _, e := range endpoints {
		at, err := c.At(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, level := range []client.Consistency{client.Leader, client.Linearizable} {
			if ps, err := at.Plugins(ctx, client.WithConsistency(level)); err != nil || len(ps) == 0 || ps[0].Name != "kv" {
				t.Errorf("Plugins at %s, %s: %+v, %v", e, level, ps, err)
			}
		}
	}
	// MsgPack in and out: {"op":"SET","key":"p","value":"v"}.
	set := []byte{0x83, 0xa2, 'o', 'p', 0xa3, 'S', 'E', 'T', 0xa3, 'k', 'e', 'y', 0xa1, 'p', 0xa5, 'v', 'a', 'l', 'u', 'e', 0xa1, 'v'}
	res, err := c.Command(ctx, "kv", set)
	if err != nil || len(res) == 0 || res[0]&0xf0 != 0x80 {
		t.Fatalf("Command: %x, %v", res, err)
	}
	d := map[string]client.Digest{}
	for _, e := range endpoints {
		at, err := c.At(e)
		if err != nil {
			t.Fatal(err)
		}
		// Each node's own digest, once it applied the write.
		deadline := time.Now().Add(30 * time.Second)
		for {
			dg, err := at.Digest(ctx, "kv")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := at.Get(ctx, "p", client.WithConsistency(client.Stale)); err == nil {
				if dg2, _ := at.Digest(ctx, "kv"); dg2 == dg {
					d[e] = dg
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never applied the command", e)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(d) != 3 {
		t.Fatalf("digests: %v", d)
	}
}

// TestPluginNameChecked: an empty plugin name, "." or ".." is refused
// before a request is sent. Sent, "/v1/plugins//digest" was cleaned,
// redirected and answered for a plugin named "digest"; "/v1/plugins/" is
// another endpoint.
func TestPluginNameChecked(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	for name, want := range map[string]string{"": "no plugin name given", ".": `plugin name "." is not valid`, "..": `plugin name ".." is not valid`} {
		if _, err := c.Digest(ctx, name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Digest(%q): %v, want %q", name, err, want)
		}
		if _, err := c.Query(ctx, name, []byte{0x80}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Query(%q): %v, want %q", name, err, want)
		}
		if err := c.RemovePlugin(ctx, name, false); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("RemovePlugin(%q): %v, want %q", name, err, want)
		}
	}
}

// TestFailoverToAnotherEndpoint: endpoints that do not answer are passed
// over, reads and writes alike (a write whose connection could not be made
// was never sent).
func TestFailoverToAnotherEndpoint(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: []string{deadAddr(t), deadAddr(t), endpoints[1]}})
	ctx := ctxT(t)
	if _, err := c.Put(ctx, "failover", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if it, err := c.Get(ctx, "failover"); err != nil || string(it.Value) != "1" {
		t.Fatal(it, err)
	}
	// No endpoint answers: ErrUnavailable, after MaxAttempts.
	c2 := newClient(t, client.Config{Endpoints: []string{deadAddr(t)}, MaxAttempts: 3, MinBackoff: time.Millisecond})
	if _, err := c2.Get(ctx, "x"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("no node: %v", err)
	}
	if _, err := c2.Put(ctx, "x", nil); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("no node, write: %v", err)
	}
}

func TestClusterStatus(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	all, err := c.ClusterStatus(ctx, true)
	if err != nil || len(all) != 3 {
		t.Fatalf("ClusterStatus: %+v, %v", all, err)
	}
	leaders := 0
	for i, s := range all {
		if s.Error != "" || s.NodeID != nodes[i].ID() || len(s.Plugins) == 0 || s.Plugins[0].Digest == "" || s.Version == "" {
			t.Fatalf("member %d: %+v", i, s)
		}
		if s.State == "Leader" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders: %+v", leaders, all)
	}
	at, _ := c.At(endpoints[2])
	if s, err := at.Status(ctx, false); err != nil || s.NodeID != nodes[2].ID() || s.Plugins[0].Digest != "" {
		t.Fatalf("Status of %s: %+v, %v", endpoints[2], s, err)
	}
}

// TestLeaderDiscovery: given every node, the client finds which one leads.
func TestLeaderDiscovery(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	id, ep, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if n.IsLeader() != (n.ID() == id) || n.IsLeader() != (endpoints[i] == ep) {
			t.Fatalf("leader %s at %s; %s leads: %v", id, ep, n.ID(), n.IsLeader())
		}
	}
}

// script is an HTTP server answering each request with the next of its
// answers, recording the requests.
type script struct {
	mu       sync.Mutex
	answers  []func(w http.ResponseWriter, r *http.Request)
	requests []*http.Request
	srv      *httptest.Server
}

func newScript(t *testing.T, answers ...func(w http.ResponseWriter, r *http.Request)) *script {
	s := &script{answers: answers}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/cluster" { // the client's discovery: no leader known
			io.WriteString(w, `{"node_id":"s","leader":""}`)
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, r)
		i := len(s.requests) - 1
		s.mu.Unlock()
		if i >= len(s.answers) {
			http.Error(w, "no more answers", 500)
			return
		}
		s.answers[i](w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func apiErr(status int, code string, hdr ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":{"code":"`+code+`","message":"scripted"}}`)
	}
}

func ok(body string, hdr ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		io.WriteString(w, body)
	}
}

// hangUp reads the request and closes the connection without answering: the
// request reached the node, its outcome is unknown.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// TestRetryOnlyWhereSafe plays the failures that make a write's outcome
// unknown and checks that the client repeats a write only when that cannot
// apply it twice.
func TestRetryOnlyWhereSafe(t *testing.T) {
	ctx := ctxT(t)
	cfg := func(s *script) client.Config {
		return client.Config{Endpoints: []string{s.srv.URL}, MinBackoff: time.Millisecond}
	}
	t.Run("write refused with 503 is retried", func(t *testing.T) {
		s := newScript(t, apiErr(503, "no_leader"), ok(`{"version":7}`))
		v, err := newClient(t, cfg(s)).Put(ctx, "k", []byte("v"))
		if err != nil || v != 7 || s.count() != 2 {
			t.Fatalf("%d %v after %d requests", v, err, s.count())
		}
	})
	for _, fail := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
	}{
		{"unknown_outcome", apiErr(504, "unknown_outcome")},
		{"timeout", apiErr(504, "timeout")},
		{"connection lost", hangUp},
	} {
		t.Run("write after "+fail.name+" is not retried", func(t *testing.T) {
			s := newScript(t, fail.answer, ok(`{"version":7}`))
			_, err := newClient(t, cfg(s)).Put(ctx, "k", []byte("v"))
			if s.count() != 1 || err == nil {
				t.Fatalf("%d requests, %v", s.count(), err)
			}
			if fail.name != "timeout" && !errors.Is(err, client.ErrUnknownOutcome) {
				t.Fatalf("error %v does not match ErrUnknownOutcome", err)
			}
		})
		t.Run("restore after "+fail.name+" is not retried", func(t *testing.T) {
			// Installed once, then writes acknowledged: a second install of
			// the same backup would wipe them (attack round 3).
			s := newScript(t, fail.answer, ok(``))
			err := newClient(t, cfg(s)).Restore(ctx, bytes.NewReader([]byte("backup")), 6)
			if s.count() != 1 || err == nil {
				t.Fatalf("%d requests, %v", s.count(), err)
			}
		})
		t.Run("read after "+fail.name+" is retried", func(t *testing.T) {
			s := newScript(t, fail.answer, ok("v", "X-Raftkv-Version", "3"))
			it, err := newClient(t, cfg(s)).Get(ctx, "k")
			if err != nil || string(it.Value) != "v" || it.Version != 3 || s.count() != 2 {
				t.Fatalf("%+v %v after %d requests", it, err, s.count())
			}
		})
		t.Run("keyed write after "+fail.name+" is retried with its key when the cluster deduplicates", func(t *testing.T) {
			s := newScript(t, ok(`{"version":1}`, "X-Raftkv-Idempotency", "1"), fail.answer, ok(`{"version":7}`))
			c := newClient(t, cfg(s))
			if _, err := c.Put(ctx, "first", nil); err != nil { // learns that the cluster deduplicates
				t.Fatal(err)
			}
			v, err := c.Put(ctx, "k", []byte("v"))
			if err != nil || v != 7 || s.count() != 3 {
				t.Fatalf("%d %v after %d requests", v, err, s.count())
			}
			k1, k2 := s.requests[1].Header.Get("Idempotency-Key"), s.requests[2].Header.Get("Idempotency-Key")
			if k1 == "" || k1 != k2 || k1 == s.requests[0].Header.Get("Idempotency-Key") {
				t.Fatalf("keys %q, %q (first write %q)", k1, k2, s.requests[0].Header.Get("Idempotency-Key"))
			}
		})
	}
	t.Run("no keys: never retried", func(t *testing.T) {
		s := newScript(t, ok(`{"version":1}`, "X-Raftkv-Idempotency", "1"), apiErr(504, "unknown_outcome"), ok(`{"version":7}`))
		conf := cfg(s)
		conf.NoIdempotencyKeys = true
		c := newClient(t, conf)
		c.Put(ctx, "first", nil)
		if _, err := c.Put(ctx, "k", nil); !errors.Is(err, client.ErrUnknownOutcome) || s.count() != 2 || s.requests[1].Header.Get("Idempotency-Key") != "" {
			t.Fatalf("%v after %d requests", err, s.count())
		}
	})
	t.Run("a write that is not a plugin command gets no key and is not retried after unknown_outcome", func(t *testing.T) {
		// The cluster deduplicates plugin commands only: a key on a limits
		// change, a quarantine or a removal would promise what it does not do.
		s := newScript(t, ok(`{"version":1}`, "X-Raftkv-Idempotency", "1"), apiErr(504, "unknown_outcome"), ok(`{}`))
		c := newClient(t, cfg(s))
		c.Put(ctx, "first", nil)
		_, err := c.Do(ctx, client.Request{Method: http.MethodPut, Path: "/v1/plugins/p/limits", Write: true, Leader: true})
		if !errors.Is(err, client.ErrUnknownOutcome) || s.count() != 2 || s.requests[1].Header.Get("Idempotency-Key") != "" {
			t.Fatalf("%v after %d requests (key %q)", err, s.count(), s.requests[1].Header.Get("Idempotency-Key"))
		}
	})
	t.Run("a removal retried after unknown_outcome that finds nothing was done", func(t *testing.T) {
		s := newScript(t, apiErr(504, "unknown_outcome"), apiErr(404, "not_found"))
		if err := newClient(t, cfg(s)).RemoveMember(ctx, "n1"); err != nil || s.count() != 2 {
			t.Fatalf("%v after %d requests", err, s.count())
		}
		s = newScript(t, apiErr(404, "not_found"))
		if err := newClient(t, cfg(s)).RemovePlugin(ctx, "p", false); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("a first answer not_found: %v", err)
		}
	})
	t.Run("an idempotent write (a deploy) after unknown_outcome is retried", func(t *testing.T) {
		s := newScript(t, apiErr(504, "unknown_outcome"), ok(`{"name":"p","hash":"h"}`))
		info, err := newClient(t, cfg(s)).Deploy(ctx, "p", []byte("\x00asm"))
		if err != nil || info.Hash != "h" || s.count() != 2 {
			t.Fatalf("%+v %v after %d requests", info, err, s.count())
		}
	})
	t.Run("a quarantined plugin is final", func(t *testing.T) {
		// Quarantine is replicated: another node, or the same one later,
		// answers the same until an operator acts (the CLI took 26 s).
		s := newScript(t, apiErr(503, "quarantined"), ok(`{}`))
		_, err := newClient(t, cfg(s)).Do(ctx, client.Request{Method: http.MethodPost, Path: "/v1/plugins/p/query", Body: []byte("{}")})
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Code != "quarantined" || s.count() != 1 {
			t.Fatalf("%v after %d requests", err, s.count())
		}
	})
	t.Run("a 4xx is final", func(t *testing.T) {
		s := newScript(t, apiErr(409, "conflict"), ok(`{"version":7}`))
		if _, err := newClient(t, cfg(s)).CAS(ctx, "k", 1, nil); !client.IsConflict(err) || s.count() != 1 {
			t.Fatalf("%v after %d requests", err, s.count())
		}
	})
	t.Run("not_leader moves to the named leader", func(t *testing.T) {
		leader := newScript(t, ok(`{"version":9}`))
		follower := newScript(t, apiErr(503, "not_leader", "X-Raftkv-Leader", leader.srv.URL))
		c := newClient(t, client.Config{Endpoints: []string{follower.srv.URL}, MinBackoff: time.Millisecond})
		v, err := c.Put(ctx, "k", nil)
		if err != nil || v != 9 || leader.count() != 1 {
			t.Fatalf("%d %v; the leader got %d requests", v, err, leader.count())
		}
	})
	t.Run("the context bounds the retries", func(t *testing.T) {
		answers := make([]func(http.ResponseWriter, *http.Request), 1000)
		for i := range answers {
			answers[i] = apiErr(503, "no_leader")
		}
		s := newScript(t, answers...)
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		conf := cfg(s)
		conf.MaxAttempts = 1000
		start := time.Now()
		// The deadline ends a pause between attempts (the last answer,
		// no_leader, is returned) or an attempt in flight.
		if _, err := newClient(t, conf).Get(short, "k"); !errors.Is(err, client.ErrNoLeader) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, eps := range [][]string{nil, {"ftp://x:1"}, {"http://"}, {"http://x:1/path"}} {
		if _, err := client.New(client.Config{Endpoints: eps}); err == nil {
			t.Errorf("endpoints %q accepted", eps)
		}
	}
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:1", "http://127.0.0.1:1/", "https://h:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Endpoints(), " "); got != "http://127.0.0.1:1 https://h:2" {
		t.Fatalf("endpoints %s", got)
	}
}

// Removing the leader: the leader asked would hand leadership over, the new
// leader remove it and close its connections, so the old leader could not
// learn the outcome (504). The client sends the removal to another member
// instead, even with the leader's endpoint first (and the leader known),
// and it answers success. (The client used to send it to the leader, then
// retry elsewhere and take the not_found that followed as done.)
func TestRemoveTheLeader(t *testing.T) {
	nodes, endpoints, closeAll, err := startCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	ctx := ctxT(t)
	var leader string
	var at int
	for i, n := range nodes {
		if n.IsLeader() {
			leader, at = n.ID(), i
		}
	}
	if leader == "" {
		t.Fatal("no leader")
	}
	// The leader's endpoint first, behind a proxy that counts the
	// removals sent to it.
	target, err := url.Parse(endpoints[at])
	if err != nil {
		t.Fatal(err)
	}
	var toLeader atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			toLeader.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	eps := append([]string{proxy.URL}, append(append([]string{}, endpoints[:at]...), endpoints[at+1:]...)...)
	c := newClient(t, client.Config{Endpoints: eps, MinBackoff: 20 * time.Millisecond})
	if id, _, err := c.Leader(ctx); err != nil || id != leader {
		t.Fatalf("the client's leader: %q, %v; want %s", id, err, leader)
	}
	if err := c.RemoveMember(ctx, leader); err != nil {
		t.Fatalf("removing the leader %s: %v", leader, err)
	}
	if n := toLeader.Load(); n != 0 {
		t.Errorf("the removal of leader %s was sent to it %d times", leader, n)
	}
	survivor := newClient(t, client.Config{Endpoints: eps[1:]})
	cl, err := survivor.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cl.Members {
		if m.ID == leader {
			t.Fatalf("%s is still a member: %+v", leader, cl.Members)
		}
	}
	// A removal whose first attempt was answered is not excused: not_found.
	if err := survivor.RemoveMember(ctx, leader); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("removing %s again: %v, want not_found", leader, err)
	}
}

// TestPublishedAddressesUnreachable: the cluster publishes each member's
// API address as the member advertises it (a name on a container network,
// say), which may not resolve where the client runs. Given an endpoint of
// every node, the client reaches the leader through the one it was given,
// and never dials a published address it does not need.
func TestPublishedAddressesUnreachable(t *testing.T) {
	published := func(id string) string { return "http://" + id + ".invalid:8080" }
	node := func(id string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			switch {
			case r.URL.Path == "/v1/cluster":
				fmt.Fprintf(w, `{"node_id":%q,"leader":"n3","members":[{"id":"n1","api_address":%q},{"id":"n2","api_address":%q},{"id":"n3","api_address":%q}]}`,
					id, published("n1"), published("n2"), published("n3"))
			case id == "n3":
				io.WriteString(w, `{"version":7}`)
			default:
				apiErr(503, "not_leader", "X-Raftkv-Leader", published("n3"))(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	var mu sync.Mutex
	var dialed []string
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	c := newClient(t, client.Config{
		Endpoints:  []string{node("n1").URL, node("n2").URL, node("n3").URL},
		HTTPClient: &http.Client{Transport: tr},
	})
	if v, err := c.Put(ctxT(t), "k", []byte("v")); err != nil || v != 7 {
		t.Fatalf("Put: %d, %v", v, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range dialed {
		if strings.HasSuffix(a, ".invalid:8080") {
			t.Errorf("the client dialed the published address %s; dials: %q", a, dialed)
		}
	}
}

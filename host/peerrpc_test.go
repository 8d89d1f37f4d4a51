package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/evilpeer"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// rawCall sends a forwarding RPC whose body is the MsgPack map req and
// returns the error code and message of the answer (0, "" for success).
func rawCall(t *testing.T, p *evilpeer.Peer, method string, req map[string]any) (peerrpc.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, msg, err := p.CallMap(ctx, method, req)
	if err != nil {
		t.Fatal(err)
	}
	return code, msg
}

// applyBody is the body of a forwarded write of one kv command.
func applyBody(c []byte) map[string]any {
	return map[string]any{"commands": []any{map[string]any{"plugin": "kv", "key": "", "data": c}}}
}

// adminCalls are a request of every administrative method, each of which
// would change the cluster if it were served.
func adminCalls(t *testing.T, victim string) map[string]map[string]any {
	key, err := transport.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]map[string]any{
		"trust":         {"id": "intruder", "key": trust.TrustLine(key.PublicKey(), "intruder")},
		"remove":        {"id": victim},
		"deploy":        {"plugin": "evil", "wasm": kvwasm.Module},
		"remove-plugin": {"plugin": "kv", "drop": true},
		"join":          {"join": map[string]any{"id": victim, "address": "127.0.4.9:9"}},
	}
}

// TestTrustedKeyCanOnlyJoinItself: a key trusted for a node ID that is not
// a member (issue 10, attack 2) calls every method on the leader; all but
// a ping and the join of its own ID are refused as forbidden. The ping
// tells it the leader's advertised Raft address, nothing more.
func TestTrustedKeyCanOnlyJoinItself(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	leader := c.Leader()
	key, err := transport.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := leader.Node.Trust(ctx, "", trust.TrustLine(key.PublicKey(), "ghost")); err != nil {
		t.Fatal(err)
	}
	p := attacker(t, key, "ghost", leader)
	waitAdmitted(t, p)
	calls := adminCalls(t, c.Followers()[0].ID)
	calls["apply"] = applyBody(cmd(t, map[string]any{"op": "SET", "key": "evil", "value": "ghost"}))
	calls["query"] = map[string]any{"plugin": "kv", "data": cmd(t, map[string]any{"op": "GET", "key": "before"}), "level": int(host.Stale)}
	calls["status"] = map[string]any{}
	calls["plugin-list"] = map[string]any{"level": int(host.Linearizable)}
	for method, req := range calls {
		if code, msg := rawCall(t, p, method, req); code != peerrpc.CodeForbidden {
			t.Errorf("%s from a trusted non-member: code %d (%s), want forbidden", method, code, msg)
		}
	}
	if code, msg := rawCall(t, p, "ping", map[string]any{}); code != 0 {
		t.Errorf("ping from a trusted non-member: code %d (%s), want an answer", code, msg)
	}
	// Its own join is not forbidden.
	code, msg := rawCall(t, p, "join", map[string]any{"join": map[string]any{"id": "ghost", "address": "127.0.4.9:9", "non_voter": true}})
	if code == peerrpc.CodeForbidden {
		t.Errorf("ghost's own join was forbidden: %s", msg)
	}
	if !c.Logged("refused a peer RPC", "peer=ghost", "method=trust") {
		t.Errorf("no refusal logged")
	}
	if v, err := get(t, leader.Node, "evil", host.Stale); !errors.Is(err, notFound) {
		t.Errorf("evil = %q, %v; want not found", v, err)
	}
	if len(leader.Node.Plugins()) != 1 {
		t.Errorf("plugins: %v", leader.Node.Plugins())
	}
}

// TestNonVoterCannotAdminister: a non-voter's key may forward reads and
// writes, but not trust, remove, deploy, remove a plugin or join another
// node; with the cluster token in the request it may.
func TestNonVoterCannotAdminister(t *testing.T) {
	const token = "s3cret-token"
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) { cfg.Token = token }})
	nv := c.AddNonVoter("nv")
	c.WaitConverged(4)
	leader := c.Leader()
	p := attacker(t, memberKey(t, nv), nv.ID, leader)
	victim := c.Followers()[0].ID
	for method, req := range adminCalls(t, victim) {
		if code, msg := rawCall(t, p, method, req); code != peerrpc.CodeForbidden {
			t.Errorf("%s from a non-voter: code %d (%s), want forbidden", method, code, msg)
		}
		req["token"] = "wrong"
		if code, msg := rawCall(t, p, method, req); code != peerrpc.CodeForbidden {
			t.Errorf("%s from a non-voter with a wrong token: code %d (%s), want forbidden", method, code, msg)
		}
	}
	if code, msg := rawCall(t, p, "apply", applyBody(cmd(t, map[string]any{"op": "SET", "key": "w", "value": "1"}))); code != 0 {
		t.Errorf("a non-voter's forwarded write: code %d (%s)", code, msg)
	}
	// A body of the shape another method takes (the fields every method
	// once shared) is refused, naming the fault.
	if code, msg := rawCall(t, p, "apply", map[string]any{"plugin": "kv", "data": cmd(t, map[string]any{"op": "SET", "key": "w2", "value": "1"})}); code != peerrpc.CodeInvalid || !strings.Contains(msg, "apply request") || !strings.Contains(msg, "unknown field") {
		t.Errorf("a malformed apply: code %d (%s), want invalid", code, msg)
	}
	key, err := transport.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	code, msg := rawCall(t, p, "trust", map[string]any{"key": trust.TrustLine(key.PublicKey(), "n9"), "token": token})
	if code != 0 {
		t.Errorf("trust with the token: code %d (%s)", code, msg)
	}
	// The node's own API path: Node.Trust on the non-voter forwards with
	// its configured token.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := nv.Node.Trust(ctx, "", trust.TrustLine(key.PublicKey(), "n9")); err != nil {
		t.Errorf("Trust on the non-voter: %v", err)
	}
	for _, m := range c.Members {
		if _, err := get(t, m.Node, "w", host.Leader); err != nil {
			t.Errorf("%s: %v", m.ID, err)
		}
	}
	if v := len(leader.Node.Plugins()); v != 1 {
		t.Errorf("plugins: %v", leader.Node.Plugins())
	}
}

// TestForwardedAdminNeedsTokenFromNonVoter: without a cluster token a
// non-voter's own Node.Trust is forbidden at the leader, with the error's
// identity kept across forwarding.
func TestForwardedAdminNeedsTokenFromNonVoter(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	nv := c.AddNonVoter("nv")
	c.WaitConverged(4)
	key, err := transport.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := nv.Node.Trust(ctx, "", trust.TrustLine(key.PublicKey(), "n9")); !errors.Is(err, host.ErrForbidden) {
		t.Errorf("Trust on a non-voter without a token: %v, want ErrForbidden", err)
	}
}

package host_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

func TestMain(m *testing.M) {
	// waitFuture's goroutine stays blocked on a future that Raft took but
	// never answers because it shut down first (host/future.go).
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/raftkv/raftkv/host.waitFuture.func1"))
}

func cmd(t testing.TB, v map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func set(t testing.TB, n *host.Node, k, v string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, "kv", cmd(t, map[string]any{"op": "SET", "key": k, "value": v}))
	if err != nil {
		return err
	}
	return res.Err()
}

func mustSet(t testing.TB, n *host.Node, k, v string) {
	t.Helper()
	if err := set(t, n, k, v); err != nil {
		t.Fatalf("SET %s on %s: %v", k, n.ID(), err)
	}
}

// get returns the value of k, "" with abi not_found, or an error.
func get(t testing.TB, n *host.Node, k string, level host.Consistency) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := n.Query(ctx, "kv", cmd(t, map[string]any{"op": "GET", "key": k}), level)
	if err != nil {
		return "", err
	}
	if err := res.Err(); err != nil {
		return "", err
	}
	var out struct {
		Value []byte `msgpack:"value"`
	}
	if err := msgpack.Unmarshal(res.Data, &out); err != nil {
		t.Fatal(err)
	}
	return string(out.Value), nil
}

func mustGet(t testing.TB, n *host.Node, k string, level host.Consistency, want string) {
	t.Helper()
	got, err := get(t, n, k, level)
	if err != nil || got != want {
		t.Fatalf("GET %s on %s (%v) = %q, %v; want %q", k, n.ID(), level, got, err, want)
	}
}

var notFound = &abi.Error{Code: abi.CodeNotFound}

// eachNetwork runs test once per network of the in-process cluster
// (cluster.Networks: TCP through fault proxies, and the in-memory network),
// as subtests named after the network. The forwarding and membership tests
// run this way, so that each asserts the same on both and the in-memory
// network is held to TCP's behaviour.
func eachNetwork(t *testing.T, test func(t *testing.T, network string)) {
	for _, network := range cluster.Networks {
		t.Run(network, func(t *testing.T) { test(t, network) })
	}
}

// TestWritesThroughFollowerAndFailover: writes through a follower; the
// leader crashes; a new leader is elected with every acknowledged write; the
// old leader restarts and catches up.
func TestWritesThroughFollowerAndFailover(t *testing.T) {
	eachNetwork(t, testWritesThroughFollowerAndFailover)
}

func testWritesThroughFollowerAndFailover(t *testing.T, network string) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Network: network})
	f := c.Followers()[0]
	for i := range 50 {
		mustSet(t, f.Node, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i))
	}
	old := c.Leader()
	c.Crash(old)
	nl := c.Leader()
	if nl == old {
		t.Fatal("crashed node still leads")
	}
	for i := range 50 {
		mustGet(t, nl.Node, fmt.Sprintf("k%02d", i), host.Linearizable, fmt.Sprintf("v%d", i))
	}
	mustSet(t, nl.Node, "after", "failover")
	c.Restart(old)
	cluster.Poll(t, 20*time.Second, func() bool {
		v, err := get(t, old.Node, "after", host.Stale)
		return err == nil && v == "failover"
	}, "restarted old leader did not catch up")
	for i := range 50 {
		mustGet(t, old.Node, fmt.Sprintf("k%02d", i), host.Stale, fmt.Sprintf("v%d", i))
	}
}

func TestForwardingKeepsPluginErrors(t *testing.T) { eachNetwork(t, testForwardingKeepsPluginErrors) }

func testForwardingKeepsPluginErrors(t *testing.T, network string) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Network: network})
	f := c.Followers()[0].Node
	ctx := context.Background()
	res, err := f.Apply(ctx, "kv", cmd(t, map[string]any{"op": "FROB", "key": "k"}))
	if err != nil || res.Code != abi.CodeBadRequest {
		t.Fatalf("unknown op through follower: %v %v", res, err)
	}
	mustSet(t, f, "k", "v1")
	res, err = f.Apply(ctx, "kv", cmd(t, map[string]any{"op": "CAS", "key": "k", "value": "v2", "version": 1}))
	if err != nil || res.Code != abi.CodeConflict {
		t.Fatalf("CAS conflict through follower: %+v %v", res, err)
	}
	if _, err := f.Apply(ctx, "nope", []byte{0x80}); !errors.Is(err, host.ErrUnknownPlugin) {
		t.Fatalf("unknown plugin through follower: %v", err)
	}
	if _, err := get(t, f, "missing", host.Leader); !errors.Is(err, notFound) {
		t.Fatalf("missing key through follower: %v", err)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

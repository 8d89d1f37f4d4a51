package host_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestIdempotentWrites: a compare-and-set is not idempotent (sent twice,
// the second fails on the version the first wrote). Sent again with the
// same idempotency key, through the leader or a follower, concurrently or
// after a backup was restored into another cluster, it gets the first
// result and is not applied again. Without the key table, the repeats get
// conflict results.
func TestIdempotentWrites(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	leader, follower := c.Leader().Node, c.Followers()[0].Node
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustSet(t, leader, "k", "v0")
	version := func() uint64 {
		res, err := leader.Query(ctx, "kv", cmd(t, map[string]any{"op": "GET", "key": "k"}), host.Linearizable)
		var out struct {
			Version uint64 `msgpack:"version"`
		}
		if err != nil || res.Err() != nil || msgpack.Unmarshal(res.Data, &out) != nil {
			t.Fatalf("GET k: %+v, %v", res, err)
		}
		return out.Version
	}
	cas := cmd(t, map[string]any{"op": "CAS", "key": "k", "value": "v1", "version": version()})

	first, err := follower.ApplyOnce(ctx, "kv", "cas-1", cas)
	if err != nil || first.Code != abi.CodeOK {
		t.Fatalf("CAS through a follower: %+v, %v", first, err)
	}
	after := version()
	same := func(where string, r abi.Result, err error) {
		t.Helper()
		if err != nil || r.Code != first.Code || !bytes.Equal(r.Data, first.Data) {
			t.Fatalf("%s: %v %q, %v; want the first result %v %q", where, r.Code, r.Data, err, first.Code, first.Data)
		}
	}
	r, err := leader.ApplyOnce(ctx, "kv", "cas-1", cas)
	same("the same CAS and key through the leader", r, err)
	var wg sync.WaitGroup
	results := make([]abi.Result, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() { // some share a batch: the run's first applies, the others repeat it
			defer wg.Done()
			results[i], errs[i] = c.Members[i%3].Node.ApplyOnce(ctx, "kv", "cas-1", cas)
		}()
	}
	wg.Wait()
	for i := range results {
		same("a concurrent repeat", results[i], errs[i])
	}
	if v := version(); v != after {
		t.Fatalf("k's version moved from %d to %d: a repeat was applied", after, v)
	}
	// Concurrent first attempts of a new key: exactly one applies.
	cas2 := cmd(t, map[string]any{"op": "CAS", "key": "k", "value": "v2", "version": after})
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.Members[i%3].Node.ApplyOnce(ctx, "kv", "cas-2", cas2)
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i].Code != abi.CodeOK || !bytes.Equal(results[i].Data, results[0].Data) {
			t.Fatalf("concurrent CAS with one key: %d: %v %q, %v; want one success shared by all", i, results[i].Code, results[i].Data, errs[i])
		}
	}

	// Without a key the same CAS is applied again, and conflicts.
	if r, err := leader.Apply(ctx, "kv", cas); err != nil || r.Code != abi.CodeConflict {
		t.Fatalf("CAS repeated without a key: %+v, %v; want a conflict", r, err)
	}
	// A used key with another command is refused.
	if _, err := leader.ApplyOnce(ctx, "kv", "cas-1", cmd(t, map[string]any{"op": "SET", "key": "x", "value": "y"})); !errors.Is(err, host.ErrInvalid) {
		t.Fatalf("a used key with another command: %v; want ErrInvalid", err)
	}
	if _, err := leader.ApplyOnce(ctx, "kv", "bad key", cas); !errors.Is(err, host.ErrInvalid) {
		t.Fatalf("a key with a space: %v; want ErrInvalid", err)
	}

	// The table is in the state: a backup restored elsewhere keeps it.
	var backup bytes.Buffer
	if _, err := leader.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	other := cluster.Start(t, cluster.Options{Nodes: 1})
	if err := other.Leader().Node.Restore(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	r, err = other.Leader().Node.ApplyOnce(ctx, "kv", "cas-1", cas)
	same("the CAS repeated on a cluster restored from a backup", r, err)
}

package system_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// TestClientFailover: a Go program uses a 3-node cluster of real processes
// through the client package alone, across the leader's death (SIGKILL),
// and the CLI given every node with --endpoints keeps working while a node
// is down.
func TestClientFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test of the built binary; not in -short")
	}
	bin := buildBinary(t)
	cl := startCluster(t, bin, []string{"f1", "f2", "f3"}, []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"})
	var eps []string
	for _, p := range cl {
		eps = append(eps, p.url())
	}
	c, err := kvclient.New(kvclient.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 30*time.Second)
	}
	unknownOutcomes := 0
	write := func(i int) {
		t.Helper()
		ctx, cancel := call()
		defer cancel()
		if putReadBack(t, ctx, c, fmt.Sprintf("fo/%03d", i), []byte(fmt.Sprint(i))) {
			unknownOutcomes++
		}
		it, err := c.Get(ctx, fmt.Sprintf("fo/%03d", i), kvclient.WithConsistency(kvclient.Linearizable))
		if err != nil || string(it.Value) != fmt.Sprint(i) {
			t.Fatalf("get %d: %q, %v", i, it.Value, err)
		}
	}
	for i := range 10 {
		write(i)
	}
	// Every member's status, from any node (once the followers applied
	// the last write, their lag is 0).
	poll(t, 20*time.Second, "status --cluster", func() error {
		table := mustCLI(t, "status", "--cluster", "--addr", eps[1])
		for _, p := range cl {
			if !regexp.MustCompile(`(?m)^` + p.id + ` +` + regexp.QuoteMeta(p.url()) + ` +` + regexp.QuoteMeta(testVersion) + ` +(leader|follower) +\d+ +\d+ +\d+ +0 +ok +10 +[\d.]+ [KMG]?i?B +kv `).MatchString(table) {
				return fmt.Errorf("no healthy row for %s:\n%s", p.id, table)
			}
		}
		if strings.Count(table, " leader ") != 1 {
			return fmt.Errorf("not one leader:\n%s", table)
		}
		return nil
	})
	mustCLI(t, "health", "--cluster", "--addr", eps[2])

	// Deploy and restore report their steps and every member's progress.
	wasmFile := filepath.Join(t.TempDir(), "kv2.wasm")
	if err := os.WriteFile(wasmFile, kvwasm.Module, 0o600); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "plugin", "deploy", "kv2", wasmFile, "--endpoints", strings.Join(eps, ","))
	if r.code != 0 {
		t.Fatalf("deploy: %+v", r)
	}
	wantPhases(t, r.stderr, "deploy kv2", fmt.Sprintf("upload %.1f MiB to the leader", float64(len(kvwasm.Module))/(1<<20)), "validate, compile and replicate on the leader", "compile and activate on every member")
	backup := filepath.Join(t.TempDir(), "b.bin")
	mustCLI(t, "backup", backup, "--quiet", "--addr", eps[0])
	r = cli(t, "restore", backup, "--endpoints", strings.Join(eps, ","))
	if r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	wantPhases(t, r.stderr, "restore", "upload to the leader", "verify and install on the leader", "install on every member")

	ctx, cancel := call()
	leaderID, leaderEP, err := c.Leader(ctx)
	cancel()
	old := cl.leader(t)
	if err != nil || leaderID != old.id || leaderEP != old.url() {
		t.Fatalf("client's leader %s at %s (%v); the cluster's %s at %s", leaderID, leaderEP, err, old.id, old.url())
	}
	// A compare-and-set with an idempotency key, answered by the leader,
	// which then dies: the same request sent again to a survivor gets the
	// original answer, not a conflict with the version it wrote.
	casReq := func(ep string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, ep+"/v1/kv/cas/fo?cas=0", strings.NewReader("once"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Idempotency-Key", "fo-cas-0001")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	casCode, casBody, h := casReq(old.url())
	if casCode != http.StatusOK || h.Get("X-Raftkv-Idempotency") == "" {
		t.Fatalf("keyed CAS: %d %s %v", casCode, casBody, h)
	}
	old.kill()
	for _, p := range cl {
		if p == old {
			continue
		}
		poll(t, 30*time.Second, "the keyed CAS repeated on "+p.id, func() error {
			if code, body, _ := casReq(p.url()); code != casCode || body != casBody {
				return fmt.Errorf("%d %s; want the first answer %d %s", code, body, casCode, casBody)
			}
			return nil
		})
	}
	start := time.Now()
	write(10) // the client's leader is gone: it finds the new one
	t.Logf("first write after the leader's death took %v", time.Since(start).Round(time.Millisecond))
	for i := 11; i < 20; i++ {
		write(i)
	}
	ctx, cancel = call()
	t.Logf("%d of 20 writes had an unknown outcome and were read back", unknownOutcomes)
	newID, _, err := c.Leader(ctx)
	cancel()
	if err != nil || newID == old.id {
		t.Fatalf("leader after the failover: %s, %v", newID, err)
	}

	// The dead node is reported, and health --cluster fails, from any live
	// node (through --endpoints, starting with the dead one).
	var nodes []nodeStatus
	down := strings.Join([]string{old.url(), eps[0], eps[1], eps[2]}, ",")
	if err := json.Unmarshal([]byte(mustCLI(t, "status", "--cluster", "--json", "--endpoints", down)), &nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if (n.NodeID == old.id) != (n.Health == "unreachable") || n.NodeID != old.id && n.Health != "ok" {
			t.Fatalf("status --cluster --json with %s down: %+v", old.id, nodes)
		}
	}
	if r := cli(t, "health", "--cluster", "--endpoints", down); r.code != exitError || !strings.Contains(r.stdout, old.id+" - unreachable") {
		t.Fatalf("health --cluster with %s down: %+v", old.id, r)
	}

	// The CLI with the dead node first in --endpoints.
	var order []string
	order = append(order, old.url())
	for _, p := range cl {
		if p != old {
			order = append(order, p.url())
		}
	}
	all := strings.Join(order, ",")
	if out := mustCLI(t, "put", "fo/cli", "yes", "--endpoints", all); !strings.HasPrefix(out, "OK, version ") {
		t.Fatalf("put --endpoints: %q", out)
	}
	if out := mustCLI(t, "get", "fo/cli", "--consistency", "linearizable", "--endpoints", all); out != "yes\n" {
		t.Fatalf("get --endpoints: %q", out)
	}
	// status and members show the view of the first node that answers.
	var ms []kvclient.Member
	if err := json.Unmarshal([]byte(mustCLI(t, "members", "--json", "--endpoints", all)), &ms); err != nil || len(ms) != 3 {
		t.Fatalf("members --endpoints with the dead node first: %+v (%v)", ms, err)
	}
	for _, m := range ms {
		if m.ID == old.id && m.Reachable {
			t.Fatalf("members --endpoints: the dead %s is reachable: %+v", old.id, ms)
		}
	}
	// A deploy with a member down: it is reported and, after 10 s
	// unreachable, not waited for (the wait was for the whole 2 minutes).
	r = cli(t, "plugin", "deploy", "kv3", wasmFile, "--endpoints", all)
	if r.code != 0 || !strings.Contains(r.stderr, old.id+" unreachable for 10s: not waiting for it") ||
		!strings.Contains(r.stderr, "not confirmed: "+old.id+" not there yet") {
		t.Fatalf("deploy with %s down: %+v", old.id, r)
	}
	if out := mustCLI(t, "status", "--endpoints", all); !strings.Contains(out, newID) {
		t.Fatalf("status --endpoints with the dead node first: %q", out)
	}
	if r := cli(t, "status", "--addr", old.url(), "--timeout", "5s"); r.code != exitError || !strings.Contains(r.stderr, "no node answered") {
		t.Fatalf("status of the dead node alone: %+v", r)
	}
	// --addr alone on the dead node fails.
	if r := cli(t, "get", "fo/cli", "--addr", old.url(), "--timeout", "5s"); r.code != exitError || !strings.Contains(r.stderr, "no node answered") {
		t.Fatalf("get through the dead node alone: %+v", r)
	}
	t.Setenv("RAFTKV_ENDPOINTS", all)
	if out := mustCLI(t, "list", "--prefix", "fo/", "--keys-only"); strings.Count(out, "\n") != 21 {
		t.Fatalf("list with RAFTKV_ENDPOINTS: %q", out)
	}
	// With RAFTKV_ENDPOINTS, --addr is tried first, then the others.
	if out := mustCLI(t, "get", "fo/cli", "--addr", old.url()); out != "yes\n" {
		t.Fatalf("get --addr dead with RAFTKV_ENDPOINTS: %q", out)
	}

	// The old leader comes back with its data and catches up.
	old.start()
	cl.waitReady(t, 3)
	poll(t, 30*time.Second, old.id+" caught up", func() error {
		v, err := old.staleGet("fo/019")
		if err != nil || v != "19" {
			return fmt.Errorf("%q %v", v, err)
		}
		return nil
	})
	poll(t, 30*time.Second, "health --cluster", func() error {
		if r := cli(t, "health", "--cluster", "--endpoints", down); r.code != 0 {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})
}

// wantPhases checks the progress a deploy or restore printed: each step
// started and done, in order, and every one of the 3 members reported.
func wantPhases(t *testing.T, stderr, label string, steps ...string) {
	t.Helper()
	var want []string
	for i, st := range steps {
		head := regexp.QuoteMeta(fmt.Sprintf("%s: [%d/%d] %s", label, i+1, len(steps), st))
		want = append(want, head+"…", head+`: done in \d`)
	}
	rest := stderr
	for _, w := range want {
		loc := regexp.MustCompile(`(?m)^` + w).FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("%s: no %q (in order) in:\n%s", label, w, stderr)
		}
		rest = rest[loc[1]:]
	}
	for i := 1; i <= 3; i++ {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^%s:   \[[#-]+\] %d/3 f\d at applied index \d+$`, regexp.QuoteMeta(label), i)).MatchString(stderr) {
			t.Fatalf("%s: member %d/3 not reported:\n%s", label, i, stderr)
		}
	}
}

// putReadBack writes a key as a program using the client package should
// when it cannot deduplicate: a write whose outcome is unknown (the node
// died holding it: a kept-alive connection to it broke after the write was
// sent) is read back before it is written again. It reports whether that
// happened. (With a cluster that deduplicates idempotency keys, the client
// retries such a write itself.)
func putReadBack(t *testing.T, ctx context.Context, c *kvclient.Client, key string, value []byte) (unknown bool) {
	t.Helper()
	_, err := c.Put(ctx, key, value)
	if errors.Is(err, kvclient.ErrUnknownOutcome) {
		unknown = true
		t.Logf("put %s: %v; reading before writing again", key, err)
		if it, gerr := c.Get(ctx, key, kvclient.WithConsistency(kvclient.Linearizable)); gerr == nil && string(it.Value) == string(value) {
			err = nil
		} else {
			_, err = c.Put(ctx, key, value)
		}
	}
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return unknown
}

package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// histogram returns the sample count and sum of node n's histogram name.
func histogram(t *testing.T, n *host.Node, name string) (count uint64, sum float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(n.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// counter returns node n's counter name.
func counter(t *testing.T, n *host.Node, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(n.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestForwardedWritesBatched: 64 writes sent to a follower at once leave
// in fewer forwarded requests than writes (raftkv_forward_batch_writes),
// and each keeps its own outcome: a write to an unknown plugin fails with
// ErrUnknownPlugin, a command the plugin refuses gets the plugin's code,
// two writes with one idempotency key are applied once (the second gets
// the first's result), and every other write is applied.
func TestForwardedWritesBatched(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	leader, f := c.Leader(), c.Followers()[0]
	mustSet(t, f.Node, "warm", "1") // the connection to the leader is up
	count0, sum0 := histogram(t, f.Node, "raftkv_forward_batch_writes")
	replays0 := counter(t, leader.Node, "raftkv_idempotent_replays_total")

	const writes = 64
	type outcome struct {
		res abi.Result
		err error
	}
	out := make([]outcome, writes)
	plugin := func(i int) string {
		if i%8 == 1 {
			return "nope"
		}
		return "kv"
	}
	commands := make([][]byte, writes) // encoded once: a map's encoding varies
	for i := range commands {
		switch i % 8 {
		case 2: // refused by kv: no key
			commands[i] = cmd(t, map[string]any{"op": "SET", "value": "x"})
		case 3: // one write sent twice under one key
			commands[i] = cmd(t, map[string]any{"op": "SET", "key": fmt.Sprintf("pair-%d", i/8), "value": "p"})
		case 4:
			commands[i] = commands[i-1]
		default:
			commands[i] = cmd(t, map[string]any{"op": "SET", "key": fmt.Sprintf("k%d", i), "value": fmt.Sprint(i)})
		}
	}
	key := func(i int) string {
		if i%8 == 3 || i%8 == 4 {
			return fmt.Sprintf("once-%d", i/8)
		}
		return ""
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writes {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out[i].res, out[i].err = f.Node.ApplyOnce(ctx, plugin(i), key(i), commands[i])
		})
	}
	close(start)
	wg.Wait()

	for i, o := range out {
		switch i % 8 {
		case 1:
			if !errors.Is(o.err, host.ErrUnknownPlugin) {
				t.Errorf("write %d to an unknown plugin: %+v, %v; want ErrUnknownPlugin", i, o.res, o.err)
			}
		case 2:
			if o.err != nil || o.res.OK() {
				t.Errorf("write %d without a key: %+v, %v; want kv's refusal", i, o.res, o.err)
			}
		default:
			if o.err != nil || !o.res.OK() {
				t.Errorf("write %d: %+v, %v", i, o.res, o.err)
			}
		}
	}
	for j := 0; j < writes/8; j++ {
		a, b := out[8*j+3].res, out[8*j+4].res
		if !bytes.Equal(a.Data, b.Data) {
			t.Errorf("pair %d: results %x and %x: applied twice", j, a.Data, b.Data)
		}
	}
	if got := counter(t, leader.Node, "raftkv_idempotent_replays_total") - replays0; got != writes/8 {
		t.Errorf("%v idempotent replays on the leader, want %d", got, writes/8)
	}
	count, sum := histogram(t, f.Node, "raftkv_forward_batch_writes")
	requests, sent := count-count0, sum-sum0
	t.Logf("%d writes forwarded in %d requests", uint64(sent), requests)
	if sent != writes {
		t.Errorf("%v writes forwarded, want %d", sent, writes)
	}
	if requests >= writes {
		t.Errorf("%d requests for %d concurrent writes: not batched", requests, writes)
	}
	for i := 0; i < writes; i++ {
		if i%8 == 0 || i%8 >= 5 {
			mustGet(t, leader.Node, fmt.Sprintf("k%d", i), host.Stale, fmt.Sprint(i))
		}
	}
}

// TestForwardedWritesDuringClose: a follower closed while 64 writes wait
// to be forwarded in batches answers every one (a result, or an error such
// as ErrClosed), and Close returns: no write is left waiting, no sender
// outlives the node (goleak, TestMain), and none starts while Close waits.
func TestForwardedWritesDuringClose(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	f := c.Followers()[0]
	n := f.Node
	mustSet(t, n, "warm", "1")
	const writes = 64
	start := make(chan struct{})
	errs := make(chan error, writes)
	var wg sync.WaitGroup
	for i := range writes {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := n.Apply(ctx, "kv", cmd(t, map[string]any{"op": "SET", "key": fmt.Sprintf("c%d", i), "value": "v"}))
			if err == nil {
				err = res.Err()
			}
			errs <- err
		})
	}
	count0, _ := histogram(t, n, "raftkv_forward_batch_writes")
	close(start)
	// Close as soon as a forwarded request is under way (it is counted as
	// it is sent), the other writes waiting behind it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		if count, _ := histogram(t, n, "raftkv_forward_batch_writes"); count > count0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no write was forwarded in 10 s")
		}
	}
	answered := len(errs)
	t0 := time.Now()
	c.Stop(f)
	t.Logf("closed in %v, with %d of %d writes answered when Close began", time.Since(t0), answered, writes)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writes still waiting 30 s after the node closed")
	}
	close(errs)
	var ok int
	failed := map[string]int{}
	for err := range errs {
		if err == nil {
			ok++
		} else {
			failed[err.Error()]++
		}
	}
	t.Logf("%d writes applied; failed: %v", ok, failed)
}

// holdKV is the KV plugin, run natively, that holds the application of
// every command naming a key that starts with "hold/" until the gate of
// the moment is closed: the leader's forwarded requests carrying such
// writes stay in flight meanwhile (so do those of the entries after them).
type holdKV struct {
	kvplugin.KV
	gate atomic.Pointer[chan struct{}]
}

func (h *holdKV) wait(e sdk.Entry) {
	if bytes.Contains(e.Data, []byte("hold/")) {
		<-*h.gate.Load()
	}
}

func (h *holdKV) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	h.wait(e)
	return h.KV.Apply(st, e)
}

func (h *holdKV) AppendApply(dst []byte, st sdk.State, e sdk.Entry) ([]byte, error) {
	h.wait(e)
	return h.KV.AppendApply(dst, st, e)
}

// TestForwardedWritesNotHeldBack: a follower forwards a write at once
// while fewer than 8 forwarded requests are in flight, and writes that
// arrive together leave together. With the writes held before they are
// applied (holdKV), so that no forwarded request returns:
//   - 8 writes sent to a follower one after another each leave, in a
//     request of their own (raftkv_forward_batch_writes counts them);
//   - 64 writes released at once all leave (in at most 8 requests);
//
// and once they are let through, every write is applied.
func TestForwardedWritesNotHeldBack(t *testing.T) {
	h := &holdKV{}
	open := make(chan struct{})
	close(open)
	h.gate.Store(&open)
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		nativeOn(cfg, h, "n1", "n2", "n3")
	}})
	f := c.Followers()[0]
	mustSet(t, f.Node, "warm", "1") // the connection to the leader is up

	// hold closes the gate; the cleanup (before the cluster's) opens it.
	hold := func() (release func()) {
		gate := make(chan struct{})
		h.gate.Store(&gate)
		var once sync.Once
		release = func() { once.Do(func() { close(gate) }) }
		t.Cleanup(release)
		return release
	}
	write := func(wg *sync.WaitGroup, start <-chan struct{}, key string) {
		wg.Go(func() {
			if start != nil {
				<-start
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := f.Node.Apply(ctx, "kv", cmd(t, map[string]any{"op": "SET", "key": key, "value": "v"}))
			if err == nil {
				err = res.Err()
			}
			if err != nil {
				t.Errorf("SET %s: %v", key, err)
			}
		})
	}
	sent := func() (requests uint64, writes float64) {
		return histogram(t, f.Node, "raftkv_forward_batch_writes")
	}

	release := hold()
	var wg sync.WaitGroup
	requests0, _ := sent()
	for i := range 8 {
		write(&wg, nil, fmt.Sprintf("hold/a%d", i))
		cluster.Poll(t, 10*time.Second, func() bool { r, _ := sent(); return r == requests0+uint64(i)+1 },
			"write %d did not leave while %d forwarded requests were in flight", i+1, i)
	}
	release()
	wg.Wait()

	release = hold()
	requests0, writes0 := sent()
	start := make(chan struct{})
	for i := range 64 {
		write(&wg, start, fmt.Sprintf("hold/b%d", i))
	}
	close(start)
	cluster.Poll(t, 10*time.Second, func() bool { _, w := sent(); return w == writes0+64 },
		"64 writes released together did not all leave while the first were held")
	requests, _ := sent()
	t.Logf("64 writes released together left in %d requests", requests-requests0)
	release()
	wg.Wait()

	for i := range 8 {
		mustGet(t, c.Leader().Node, fmt.Sprintf("hold/a%d", i), host.Leader, "v")
	}
	for i := range 64 {
		mustGet(t, c.Leader().Node, fmt.Sprintf("hold/b%d", i), host.Leader, "v")
	}
}

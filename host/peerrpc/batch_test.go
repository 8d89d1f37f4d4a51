package peerrpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/internal/fsm"
)

// leader answers a Batcher's apply requests as a leader would, through the
// real codecs: each command's result is its data, a command of plugin
// "nope" fails with fsm.ErrUnknownPlugin. While held (hold) it holds every
// request. It records the requests and the most in flight at once.
type leader struct {
	mu        sync.Mutex
	gate      chan struct{} // nil: not held
	requests  [][]Command
	inFlight  int
	maxFlight int
	answer    func(req *ApplyBody) []byte // nil: answer each command
}

func (l *leader) send(_ context.Context, req *ApplyBody) (abi.Result, error) {
	body, err := req.Marshal()
	if err != nil {
		return abi.Result{}, err
	}
	var got ApplyBody
	if err := got.unmarshal(body); err != nil {
		return abi.Result{}, err
	}
	l.mu.Lock()
	l.requests = append(l.requests, got.Commands)
	l.inFlight++
	l.maxFlight = max(l.maxFlight, l.inFlight)
	gate := l.gate
	l.mu.Unlock()
	defer func() { l.mu.Lock(); l.inFlight--; l.mu.Unlock() }()
	if gate != nil {
		<-gate // not ctx: the caller's deadline is the Batcher's to keep
	}
	if l.answer != nil {
		return abi.Result{Data: l.answer(&got)}, nil
	}
	out := make(ApplyResponse, len(got.Commands))
	for i, c := range got.Commands {
		if c.Plugin == "nope" {
			out[i] = ResponseOf(abi.Result{}, fmt.Errorf("leader: %w", fsm.ErrUnknownPlugin))
		} else {
			out[i] = ResponseOf(abi.Result{Data: c.Data}, nil)
		}
	}
	return abi.Result{Data: out.Marshal()}, nil
}

// hold holds the requests sent from now on until release (which the
// test's cleanup calls too).
func (l *leader) hold(t *testing.T) (release func()) {
	gate := make(chan struct{})
	l.mu.Lock()
	l.gate = gate
	l.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}

// sendEach sends writes one after another, each once the one before has
// left in a request of its own (while fewer than MaxInFlight are in
// flight, a write does not wait).
func (l *leader) sendEach(t *testing.T, writes int, send func(i int)) {
	t.Helper()
	r0, _, _ := l.stats()
	for i := range writes {
		send(i)
		poll(t, func() bool { r, _, _ := l.stats(); return r == r0+i+1 },
			fmt.Sprintf("write %d did not leave while %d requests were in flight", i+1, i))
	}
}

func (l *leader) stats() (requests, writes, maxFlight int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.requests {
		writes += len(r)
	}
	return len(l.requests), writes, l.maxFlight
}

// newBatcher returns a Batcher sending to l, and stop, which closes it and
// waits for its senders (they send what is queued first); the test's
// cleanup calls it, after the releases (cleanups run last first).
func newBatcher(t *testing.T, l *leader) (b *Batcher, stop func()) {
	var wg sync.WaitGroup
	b = NewBatcher(BatcherConfig{Send: l.send, Go: func(f func()) { wg.Go(f) }, Timeout: time.Minute})
	stop = func() { b.Close(); wg.Wait() }
	t.Cleanup(stop)
	return b, stop
}

func poll(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

// TestBatcher: writes leave at once while fewer than MaxInFlight requests
// are in flight, never more than MaxInFlight are, the writes that wait
// meanwhile leave together, and each write gets its own result or error
// (its identity kept).
func TestBatcher(t *testing.T) {
	l := &leader{}
	b, _ := newBatcher(t, l)
	release := l.hold(t)
	type outcome struct {
		res abi.Result
		err error
	}
	const writes = 8 + 64
	out := make([]outcome, writes)
	var wg sync.WaitGroup
	write := func(i int) {
		wg.Go(func() {
			plugin := "kv"
			if i%5 == 1 {
				plugin = "nope"
			}
			out[i].res, out[i].err = b.Apply(context.Background(), Command{Plugin: plugin, Data: []byte(fmt.Sprint(i))})
		})
	}
	l.sendEach(t, MaxInFlight, write)
	for i := MaxInFlight; i < writes; i++ {
		write(i)
	}
	time.Sleep(50 * time.Millisecond) // the writes queue behind the held requests
	if r, _, _ := l.stats(); r != MaxInFlight {
		t.Errorf("%d requests in flight, want %d", r, MaxInFlight)
	}
	release()
	wg.Wait()
	requests, sent, maxFlight := l.stats()
	t.Logf("%d writes in %d requests", sent, requests)
	if sent != writes || maxFlight > MaxInFlight || requests >= writes {
		t.Errorf("%d writes sent in %d requests, at most %d in flight; want %d writes, batched, at most %d", sent, requests, maxFlight, writes, MaxInFlight)
	}
	for i, o := range out {
		if i%5 == 1 {
			if !errors.Is(o.err, fsm.ErrUnknownPlugin) || o.err.Error() != "leader: "+fsm.ErrUnknownPlugin.Error() {
				t.Errorf("write %d: %v, want the leader's ErrUnknownPlugin", i, o.err)
			}
		} else if o.err != nil || string(o.res.Data) != fmt.Sprint(i) {
			t.Errorf("write %d: %q, %v; want its own result", i, o.res.Data, o.err)
		}
	}
}

// TestBatcherTimeout: a write whose caller gives up while it is queued is
// answered ErrTimeout and never sent; one whose caller gives up after it
// was sent is answered ErrTimeout saying it may still be applied.
func TestBatcherTimeout(t *testing.T) {
	l := &leader{}
	b, stop := newBatcher(t, l)
	release := l.hold(t)
	var wg sync.WaitGroup
	l.sendEach(t, MaxInFlight, func(i int) { // every sender held
		wg.Go(func() { b.Apply(context.Background(), Command{Plugin: "kv", Data: []byte{byte(i)}}) })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := b.Apply(ctx, Command{Plugin: "kv", Data: []byte("queued")})
	cancel()
	if !errors.Is(err, fsm.ErrTimeout) || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("a write given up in the queue: %v, want ErrTimeout, not sent", err)
	}
	release()
	wg.Wait()
	stop() // the queue drained
	for _, r := range l.requests {
		for _, c := range r {
			if string(c.Data) == "queued" {
				t.Error("the write given up in the queue was sent")
			}
		}
	}

	b, _ = newBatcher(t, l)
	release = l.hold(t)
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Apply(ctx, Command{Plugin: "kv"}); !errors.Is(err, fsm.ErrTimeout) || !strings.Contains(err.Error(), "may still be applied") {
		t.Errorf("a write given up in flight: %v, want ErrTimeout, may still be applied", err)
	}
	release()
}

// TestBatcherBadAnswers: an answer that is not an ApplyResponse, or one
// with a result per write missing, fails every write of the request with
// ErrUnknownOutcome; a closed Batcher refuses writes with ErrClosed.
func TestBatcherBadAnswers(t *testing.T) {
	for name, answer := range map[string]func(*ApplyBody) []byte{
		"not an array": func(*ApplyBody) []byte { return []byte{0x80} },
		"one short": func(r *ApplyBody) []byte {
			return make(ApplyResponse, len(r.Commands)-1).Marshal()
		},
		"trailing bytes": func(r *ApplyBody) []byte {
			return append(make(ApplyResponse, len(r.Commands)).Marshal(), 0xc0)
		},
	} {
		b, _ := newBatcher(t, &leader{answer: answer})
		if _, err := b.Apply(context.Background(), Command{Plugin: "kv"}); !errors.Is(err, ErrUnknownOutcome) {
			t.Errorf("%s: %v, want ErrUnknownOutcome", name, err)
		}
	}
	b, _ := newBatcher(t, &leader{})
	if _, err := b.Apply(context.Background(), Command{Plugin: "kv", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := b.Apply(context.Background(), Command{Plugin: "kv"}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// TestBatcherRequestDeadline: a request's deadline is the latest of its
// writes', a write without a deadline counting as now plus Timeout, in
// whatever order they were queued.
func TestBatcherRequestDeadline(t *testing.T) {
	var got time.Time
	b := NewBatcher(BatcherConfig{Send: func(ctx context.Context, req *ApplyBody) (abi.Result, error) {
		got, _ = ctx.Deadline()
		return abi.Result{Data: make(ApplyResponse, len(req.Commands)).Marshal()}, nil
	}, Go: func(f func()) { go f() }, Timeout: time.Minute})
	defer b.Close()
	later := time.Now().Add(time.Hour)
	pending := func(deadline time.Time) *pendingApply {
		return &pendingApply{cmd: Command{Plugin: "kv", Data: []byte{0xc0}}, deadline: deadline, done: make(chan struct{})}
	}
	for _, batch := range [][]*pendingApply{
		{pending(later), pending(time.Time{})},
		{pending(time.Time{}), pending(later)},
		{pending(time.Now().Add(time.Second)), pending(later), pending(time.Time{})},
	} {
		b.send(batch)
		if !got.Equal(later) {
			t.Errorf("a batch of %d writes, the latest deadline in %v: the request's is in %v", len(batch), time.Until(later).Round(time.Minute), time.Until(got).Round(time.Minute))
		}
	}
	b.send([]*pendingApply{pending(time.Time{}), pending(time.Now().Add(time.Second))})
	if d := time.Until(got); d < 50*time.Second {
		t.Errorf("writes without a deadline, or with a shorter one: the request's deadline is in %v, want Timeout (1m)", d.Round(time.Second))
	}
}

package peerrpc

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/internal/fsm"
)

// Forwarded writes are batched. A write to a follower is forwarded to the
// leader in an apply request of many commands, sent by one of at most
// MaxInFlight senders. A sender that starts, or that has handed out its
// request's results, first yields the processor (runtime.Gosched) and then
// takes the writes queued (up to MaxBatch): the writes that arrive
// together (a burst of requests, or the callers of the request that just
// returned sending their next writes) leave together, and a write that
// arrives while fewer than MaxInFlight requests are in flight does not
// wait for one to return (unless more than MaxBatch writes are queued
// before it). When all are in flight, the writes that arrive meanwhile
// leave together with the next sender that is free. The leader proposes a
// request's commands together (host's Node.applyForwarded), so Raft
// appends and commits them as one batch, as it does for concurrent writes
// sent to the leader itself. Each command keeps its own idempotency key,
// and gets its own result or error.
//
// Before, with one forwarding RPC per write, BenchmarkForward measured
// writes through a follower at 64 concurrent writers at half the
// throughput of writes to the leader (18.4k/s vs 33.9k/s). With two
// senders, each taking the queue as soon as it was free, a third of the
// writers waited in the queue for one of the two requests in flight: the
// callers of a returning request came back after its sender had taken
// the (empty) queue, and the first of them left alone. The figures side
// by side are in BENCHMARKS.md.

// MaxInFlight is how many forwarded applies a node has in flight: as many
// as the transport keeps idle RPC channels per peer
// (transport.rpcIdlePerPeer), so that each reuses an open channel.
const MaxInFlight = 8

// BatcherConfig is what a Batcher needs of its node.
type BatcherConfig struct {
	// Send sends an apply request to the leader and returns its answer,
	// whose Data is an ApplyResponse (host: Node.forward).
	Send func(ctx context.Context, req *ApplyBody) (abi.Result, error)
	// Go runs a sender in a goroutine that the node's Close waits for
	// (nil: a plain go statement).
	Go func(func())
	// Stop ends when the node closes: the requests in flight then fail
	// fast (nil: never).
	Stop context.Context
	// Timeout bounds a request whose writes have no deadline of their own.
	Timeout time.Duration
	// Sent, if set, is told the number of writes of each request sent (a
	// metric: raftkv_forward_batch_writes).
	Sent func(writes int)
}

// Batcher groups a node's concurrent forwarded writes.
type Batcher struct {
	cfg      BatcherConfig
	mu       sync.Mutex
	queue    []*pendingApply
	inFlight int  // senders running
	starting bool // a sender started and has not taken the queue yet
	closed   bool // the node is closing: no new sender
}

// NewBatcher returns a Batcher that sends its requests with cfg.Send.
func NewBatcher(cfg BatcherConfig) *Batcher {
	if cfg.Go == nil {
		cfg.Go = func(f func()) { go f() }
	}
	if cfg.Stop == nil {
		cfg.Stop = context.Background()
	}
	return &Batcher{cfg: cfg}
}

// Close refuses writes from now on; the senders running finish (their
// requests fail fast: cfg.Stop has ended).
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// pendingApply is a write waiting for its result.
type pendingApply struct {
	cmd      Command
	deadline time.Time // the caller's, or zero
	sent     bool      // taken into a request (under mu)
	done     chan struct{}
	res      abi.Result
	err      error
}

// Apply forwards one write, with whatever other writes are waiting, and
// returns its result or error.
func (b *Batcher) Apply(ctx context.Context, cmd Command) (abi.Result, error) {
	p := &pendingApply{cmd: cmd, done: make(chan struct{})}
	p.deadline, _ = ctx.Deadline()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return abi.Result{}, ErrClosed
	}
	b.queue = append(b.queue, p)
	if !b.starting && b.inFlight < MaxInFlight {
		b.inFlight++
		b.starting = true
		b.cfg.Go(b.run) // under mu: before close, so before Close waits
	}
	b.mu.Unlock()
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	sent := p.sent
	if !sent {
		for i, q := range b.queue {
			if q == p {
				b.queue = append(b.queue[:i], b.queue[i+1:]...)
				break
			}
		}
	}
	b.mu.Unlock()
	if !sent {
		return abi.Result{}, fmt.Errorf("%w: the write waited for a forwarded batch and was not sent: %v", fsm.ErrTimeout, ctx.Err())
	}
	return abi.Result{}, fmt.Errorf("%w: forwarding to the leader: the write may still be applied: %v", fsm.ErrTimeout, ctx.Err())
}

// take removes up to MaxBatch writes from the queue (under mu).
func (b *Batcher) take() []*pendingApply {
	n := min(len(b.queue), MaxBatch)
	batch := make([]*pendingApply, n)
	copy(batch, b.queue)
	for _, p := range batch {
		p.sent = true
	}
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// run sends the writes queued, in requests of up to MaxBatch, until
// the queue is empty. Before it takes the queue it yields, so that the
// goroutines ready to run (writers arriving together, or the callers its
// last request answered, sending again) queue their writes first.
func (b *Batcher) run() {
	for first := true; ; first = false {
		runtime.Gosched()
		b.mu.Lock()
		if first {
			b.starting = false
		}
		batch := b.take()
		if len(batch) == 0 {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.send(batch)
	}
}

// send forwards batch as one request and hands each write its result. The
// request's deadline is the latest of its writes' (a write without one
// counts as now plus Timeout; each caller still stops waiting at its own).
func (b *Batcher) send(batch []*pendingApply) {
	req := &ApplyBody{Commands: make([]Command, len(batch))}
	var deadline time.Time
	for i, p := range batch {
		req.Commands[i] = p.cmd
		d := p.deadline
		if d.IsZero() {
			d = time.Now().Add(b.cfg.Timeout)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(b.cfg.Stop, deadline)
	defer cancel()
	if b.cfg.Sent != nil {
		b.cfg.Sent(len(batch))
	}
	res, err := b.cfg.Send(ctx, req)
	var results ApplyResponse
	if err == nil {
		if err = results.Unmarshal(res.Data); err != nil {
			err = fmt.Errorf("%w: bad apply response from the leader: %v", ErrUnknownOutcome, err)
		} else if len(results) != len(batch) {
			err = fmt.Errorf("%w: the leader answered %d results for %d writes", ErrUnknownOutcome, len(results), len(batch))
		}
	}
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.res, p.err = results[i].Result()
		}
		close(p.done)
	}
}

package plugin

import (
	"context"
	"sync"

	"github.com/raftkv/raftkv/abi"
)

// Pool runs read-only queries concurrently on up to size instances of one
// module, creating them on demand and reusing idle ones.
type Pool struct {
	r     *Runtime
	m     *Module
	slots chan struct{}  // one token per instance that may exist
	idle  chan *Instance // instances not in use

	mu     sync.Mutex
	closed bool
}

// NewPool returns a pool of at most size instances of m (size >= 1).
func (r *Runtime) NewPool(m *Module, size int) *Pool {
	size = max(size, 1)
	return &Pool{r: r, m: m, slots: make(chan struct{}, size), idle: make(chan *Instance, size)}
}

func (p *Pool) get(ctx context.Context) (*Instance, error) {
	select {
	case in := <-p.idle:
		return in, nil
	default:
	}
	select {
	case in := <-p.idle:
		return in, nil
	case p.slots <- struct{}{}:
		in, err := p.r.Instantiate(ctx, p.m)
		if err != nil {
			<-p.slots
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed { // closed meanwhile, its module too: not the query's fault
				return nil, ErrClosed
			}
			return nil, err
		}
		return in, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Pool) put(ctx context.Context, in *Instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		in.Close(ctx)
		<-p.slots
		return
	}
	p.idle <- in
}

// Query runs q on an instance of the pool; see Instance.Query.
func (p *Pool) Query(ctx context.Context, st ReadStore, q []byte) (abi.Result, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return abi.Result{}, ErrClosed
	}
	in, err := p.get(ctx)
	if err != nil {
		return abi.Result{}, err
	}
	defer p.put(ctx, in)
	return in.Query(ctx, st, q)
}

// Close closes the idle instances; instances in use are closed when their
// query ends. It is idempotent. The pool's module may be closed after it: a
// query that has not got an instance by then fails with ErrClosed.
func (p *Pool) Close(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for {
		select {
		case in := <-p.idle:
			in.Close(ctx)
			<-p.slots
		default:
			return
		}
	}
}

package plugin

import (
	"context"
	"sync"

	"github.com/raftkv/raftkv/abi"
)

// runner is what a pool hands queries to: an *Instance or a *Native.
type runner interface {
	Query(ctx context.Context, st ReadStore, q []byte) (abi.Result, error)
	Validate(ctx context.Context, cmd []byte) (abi.Result, error)
	Close(ctx context.Context) error
}

// pool runs read-only queries concurrently on up to size runners, creating
// them on demand and reusing idle ones.
type pool[R runner] struct {
	make  func(ctx context.Context) (R, error)
	slots chan struct{} // one token per runner that may exist
	idle  chan R        // runners not in use

	mu     sync.Mutex
	closed bool
}

// Pool runs read-only queries concurrently on up to size instances of one
// module.
type Pool = pool[*Instance]

// NativePool runs read-only queries concurrently on up to size Natives of
// one plugin, as Pool does with instances: the same bound, so that a node
// running a plugin natively differs from a wasm node only in the engine.
// Idle Natives are reused, so a query allocates nothing for its runner.
type NativePool = pool[*Native]

func newPool[R runner](size int, mk func(context.Context) (R, error)) *pool[R] {
	size = max(size, 1)
	return &pool[R]{make: mk, slots: make(chan struct{}, size), idle: make(chan R, size)}
}

// NewPool returns a pool of at most size instances of m (size >= 1).
func (r *Runtime) NewPool(m *Module, size int) *Pool {
	return newPool(size, func(ctx context.Context) (*Instance, error) { return r.Instantiate(ctx, m) })
}

// NewNativePool returns a pool of at most size Natives of p (size >= 1). p's
// methods run concurrently, so p must be safe for concurrent use, as a
// plugin without fields is.
func NewNativePool(p Code, size int) *NativePool {
	return newPool(size, func(context.Context) (*Native, error) { return NewNative(p), nil })
}

func (p *pool[R]) get(ctx context.Context) (R, error) {
	var zero R
	select {
	case in := <-p.idle:
		return in, nil
	default:
	}
	select {
	case in := <-p.idle:
		return in, nil
	case p.slots <- struct{}{}:
		in, err := p.make(ctx)
		if err != nil {
			<-p.slots
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed { // closed meanwhile, its module too: not the query's fault
				return zero, ErrClosed
			}
			return zero, err
		}
		return in, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (p *pool[R]) put(ctx context.Context, in R) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		in.Close(ctx)
		<-p.slots
		return
	}
	p.idle <- in
}

// Query runs q on a runner of the pool (see Instance.Query and
// Native.Query). After Close it fails with ErrClosed.
func (p *pool[R]) Query(ctx context.Context, st ReadStore, q []byte) (abi.Result, error) {
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

// Validate checks a command on a runner of the pool (see
// Instance.Validate). After Close it fails with ErrClosed.
func (p *pool[R]) Validate(ctx context.Context, cmd []byte) (abi.Result, error) {
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
	return in.Validate(ctx, cmd)
}

// Close closes the idle runners; runners in use are closed when their query
// ends. It is idempotent. A Pool's module may be closed after it: a query
// that has not got an instance by then fails with ErrClosed.
func (p *pool[R]) Close(ctx context.Context) {
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

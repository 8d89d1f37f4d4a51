package host

import (
	"context"

	"github.com/hashicorp/raft"
)

// waitFuture waits for a Raft future in a goroutine, so that its caller can
// give up on it: once Raft answers it returns true and the future's error;
// if ctx ends first, false and ctx.Err(); if stop (nil: never) is closed
// first, false and ErrClosed. The goroutine ends when Raft answers, which
// it does at the latest when Raft shuts down. Every wait on a future that
// must not outlast a caller's deadline or the node goes through it.
func waitFuture(ctx context.Context, f raft.Future, stop <-chan struct{}) (answered bool, err error) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return true, err
	case <-ctx.Done():
		return false, ctx.Err()
	case <-stop:
		return false, ErrClosed
	}
}

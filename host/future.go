package host

import (
	"context"

	"github.com/hashicorp/raft"
)

// waitFuture waits for a Raft future in a goroutine, so that its caller can
// give up on it: once Raft answers it returns true and the future's error;
// if ctx ends first, false and ctx.Err(); if stop (nil: never) is closed
// first, false and ErrClosed. Every wait on a future that must not outlast
// a caller's deadline or the node goes through it.
//
// The goroutine ends when Raft answers. Raft answers every future its main
// loop takes, and those it refuses to queue once it is shut down, but not
// one still queued when it shuts down (hashicorp/raft v1.7.3: the
// leadership-transfer channel has a buffer of one; a transfer asked for just
// before Shutdown stays there). That goroutine stays blocked, holding only
// the future, until the process exits; the packages' leak checks ignore it
// (CI saw one after a full run of the host tests).
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

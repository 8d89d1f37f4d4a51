package cluster

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
)

var applySeq atomic.Uint64

// Apply applies cmd to the named plugin through the leader of the moment
// and returns the plugin's result, again after an error (a loaded machine's
// leadership moves) for up to a minute. Every attempt carries the same
// idempotency key, so a retry after an unknown outcome applies the command
// once (a counting command counts once). A result that is not OK is
// returned, not retried.
func (c *Cluster) Apply(plugin string, cmd []byte) abi.Result {
	c.t.Helper()
	key := fmt.Sprintf("cluster-apply-%d-%d", time.Now().UnixNano(), applySeq.Add(1))
	var res abi.Result
	Poll(c.t, time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if res, err = c.Leader().Node.ApplyOnce(ctx, plugin, key, cmd); err != nil {
			c.t.Logf("%s %q: %v (retrying)", plugin, cmd, err)
			time.Sleep(200 * time.Millisecond)
			return false
		}
		return true
	}, "%s %q was not applied", plugin, cmd)
	return res
}

// Snapshot makes the member's node take a Raft snapshot now, the way a
// backup does (host.Node.Backup): its next start restores that snapshot,
// with fresh plugin instances, and replays only the log after it.
func (m *Member) Snapshot() error {
	_, err := m.Node.Backup(context.Background(), io.Discard)
	return err
}

// WaitDigestCheck waits (up to a minute) until the leader of the moment has
// run a digest check at an index at or past after that compared its digests
// with every member in ids, and returns that check.
func (c *Cluster) WaitDigestCheck(after uint64, ids ...string) host.DigestCheck {
	c.t.Helper()
	var got host.DigestCheck
	Poll(c.t, time.Minute, func() bool {
		dc := c.Leader().Node.LastDigestCheck()
		if dc == nil || dc.Index < after {
			return false
		}
		for _, id := range ids {
			if !slices.Contains(dc.Compared, id) {
				return false
			}
		}
		got = *dc
		return true
	}, "no digest check at or past index %d compared with %v (last: %v)", after, ids,
		lazy(func() string { return fmt.Sprintf("%+v", c.Leader().Node.LastDigestCheck()) }))
	return got
}

package peerrpc

import (
	"errors"
	"fmt"
	"testing"

	"github.com/raftkv/raftkv/host/logstore"
)

// TestErrorCodesSurviveForwarding: every error with a wire code comes back
// from a forwarded call matching its sentinel, so a follower answers what
// the leader would have (a leader whose disk is full: degraded, not a bare
// 500), and each code names one sentinel.
func TestErrorCodesSurviveForwarding(t *testing.T) {
	seen := map[int]bool{}
	for _, c := range codes {
		if seen[int(c.code)] {
			t.Fatalf("code %d used twice", c.code)
		}
		seen[int(c.code)] = true
		err := fmt.Errorf("leader: %w", c.err)
		kind, msg := EncodeErr(err)
		if got := DecodeErr(kind, msg); !errors.Is(got, c.err) || got.Error() != err.Error() {
			t.Errorf("%v crossed forwarding as %v (code %d)", c.err, got, kind)
		}
	}
	// A degraded leader's refusal that also says it knows no leader keeps
	// the more specific identity.
	both := fmt.Errorf("%w, and this node cannot write its Raft log: %w", ErrNoLeader, logstore.ErrWriteFailing)
	if kind, msg := EncodeErr(both); !errors.Is(DecodeErr(kind, msg), logstore.ErrWriteFailing) {
		t.Errorf("%v crossed forwarding without ErrDegraded (logstore.ErrWriteFailing)", both)
	}
}

package host

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host/trust"
)

// TestNoKeyTrustedDuringJoin: while a join of an ID is under way on the
// leader, no other key can be trusted for it and a second join of it
// waits. The join counts the ID's keys, then proves possession over SSH
// (seconds, up to a timeout), then adds the node: a key trusted in between
// became a second key of the new voter (attack round 5, a stopped node
// holding the join in its proof).
func TestNoKeyTrustedDuringJoin(t *testing.T) {
	n, ctx := singleLeader(t)
	line := func() string {
		pub, _, _ := ed25519.GenerateKey(nil)
		k, _ := ssh.NewPublicKey(pub)
		return trust.TrustLine(k, "n9")
	}
	first := line()
	if _, err := n.Trust(ctx, "n9", first); err != nil {
		t.Fatal(err)
	}
	done, err := n.startJoining(ctx, "n9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Trust(ctx, "n9", line()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is joining") {
		t.Errorf("a second key for n9 during its join: %v, want refused", err)
	}
	if _, err := n.Trust(ctx, "n9", first); err != nil {
		t.Errorf("its own key again during its join: %v", err)
	}
	// A second join of n9 waits for the first to end.
	jctx, jcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = n.Join(jctx, JoinRequest{NodeID: "n9", Address: "127.0.0.1:1"})
	jcancel()
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "waiting for another join") {
		t.Errorf("a second join of n9 while one runs: %v, want it to wait", err)
	}
	done()
	if _, err := n.Trust(ctx, "n9", line()); err != nil {
		t.Errorf("a second key for n9 once no join runs (n9 is no member): %v", err)
	}
}

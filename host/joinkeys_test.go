package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestJoinRefusesSeveralKeys: an ID with more than one trusted key does not
// become a member; once its keys are revoked and the one it runs with is
// trusted, it joins. A member has one key, and trusting another for a member
// is refused, but keys trusted before the join were all kept: a removed
// node's old key trusted under a new ID let its holder log in over SSH as
// that voter (attack round 4).
func TestJoinRefusesSeveralKeys(t *testing.T) {
	newcomer := newLoneNode(t, "n9")
	other := newLoneNode(t, "n8") // its key, trusted for n9 too: a stale one
	c := cluster.Start(t, cluster.Options{Nodes: 1})
	l := c.Leader()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stale := strings.Join(strings.Fields(other.TrustLine())[:2], " ") + " n9"
	for _, line := range []string{stale, newcomer.TrustLine()} {
		lines, err := l.Node.Trust(ctx, "n9", line)
		if err != nil {
			t.Fatalf("trust %s: %v", line, err)
		}
		if err := newcomer.AcceptTrust(lines); err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Node.Join(ctx, host.JoinRequest{NodeID: "n9", Address: newcomer.Address()})
	if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "2 keys are trusted for it") {
		t.Fatalf("join of an ID with two keys: %v, want ErrInvalid naming them", err)
	}
	ms, err := l.Node.Members(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatalf("members after the refused join: %+v, %v", ms, err)
	}
	// A join that sends a third key is refused before it trusts it: the
	// ID keeps its two keys, not three (the key was trusted, then the
	// join refused).
	third := newLoneNode(t, "n7")
	_, err = l.Node.Join(ctx, host.JoinRequest{NodeID: "n9", Address: newcomer.Address(), PublicKey: third.TrustLine()})
	if !errors.Is(err, host.ErrInvalid) || !strings.Contains(err.Error(), "not the one this join sends") {
		t.Fatalf("join sending another key: %v, want ErrInvalid", err)
	}
	lines, err := l.Node.Trust(ctx, "n9", newcomer.TrustLine()) // trusted already: lists the trust lines
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(lines, "\n")+"\n", " n9\n"); n != 2 {
		t.Fatalf("n9 has %d trusted keys after a refused join that sent one, want the 2 before it: %q", n, lines)
	}
	// The way back the message gives: revoke, trust the key it runs with.
	if err := l.Node.Remove(ctx, "n9"); err != nil {
		t.Fatalf("revoking n9's keys: %v", err)
	}
	if _, err := l.Node.Trust(ctx, "n9", newcomer.TrustLine()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Node.Join(ctx, host.JoinRequest{NodeID: "n9", Address: newcomer.Address()}); err != nil {
		t.Fatalf("join with one key: %v", err)
	}
}

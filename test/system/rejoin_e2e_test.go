package system_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// suffrageOf returns id's suffrage as p lists it ("" when not a member).
func suffrageOf(p *proc, id string) (string, error) {
	a, err := p.cluster()
	if err != nil {
		return "", err
	}
	for _, m := range a.Members {
		if m.ID == id {
			return m.Suffrage, nil
		}
	}
	return "", nil
}

// TestRestartedNonVoterPromoted: a node started with --join (no
// --non-voter) that finds itself a non-voter when it restarts on its data
// (killed after the leader added it as a non-voter, before it promoted it)
// asks the leader to promote it; one started with --non-voter stays one.
// The state is made deterministic by joining with --non-voter first: what
// the data directory then holds is what the kill leaves.
func TestRestartedNonVoterPromoted(t *testing.T) {
	bin := buildBinary(t)
	n1 := newProc(t, bin, "n1", "127.0.8.1", "")
	n1.start()
	e2eCluster{n1}.waitReady(t, 1)
	mustCLI(t, "put", "before", "v1", "--addr", n1.url())

	n2 := newProc(t, bin, "n2", "127.0.8.2", n1.url())
	voterArgs := slices.Clone(n2.args)
	n2.args = append(n2.args, "--non-voter")
	n2.start()
	waitSuffrage := func(want string, within time.Duration) {
		t.Helper()
		poll(t, within, "n2 a "+want, func() error {
			if _, err := n2.staleGet("before"); err != nil {
				return err
			}
			s, err := suffrageOf(n1, "n2")
			if err == nil && s != want {
				err = fmt.Errorf("n2's suffrage is %q", s)
			}
			return err
		})
	}
	waitSuffrage("nonvoter", 30*time.Second)

	// Restarted with --non-voter, it stays a non-voter.
	n2.kill()
	n2.start()
	waitSuffrage("nonvoter", 30*time.Second)
	time.Sleep(3 * time.Second) // promoteSelf would have asked within a second
	if s, err := suffrageOf(n1, "n2"); err != nil || s != "nonvoter" {
		t.Fatalf("n2, restarted with --non-voter: suffrage %q (%v), want nonvoter", s, err)
	}
	if l := n2.log(n2.starts); strings.Contains(l, "asking the leader to promote") {
		t.Fatalf("n2, restarted with --non-voter, asked to be promoted:\n%s", l)
	}

	// Restarted with --join and without --non-voter: it finds itself a
	// non-voter and is promoted.
	n2.kill()
	n2.args = voterArgs
	n2.start()
	waitSuffrage("voter", 30*time.Second)
	l := n2.log(n2.starts)
	for _, want := range []string{"existing state found", "asking the leader to promote it", "promoted to voter"} {
		if !strings.Contains(l, want) {
			t.Errorf("n2's log has no %q:\n%s", want, l)
		}
	}
	// Both voters: a write needs n2 now, and n2 has it.
	mustCLI(t, "put", "after", "v2", "--addr", n1.url())
	poll(t, 10*time.Second, "n2 has the new write", func() error { _, err := n2.staleGet("after"); return err })
}

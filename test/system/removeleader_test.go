package system_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRemoveLeaderThroughFollower: 'raftkv remove ID --addr F', ID the
// leader and F another member, answers success once the removal is done, as
// the README promises of a removal sent to a member other than ID. (The CLI
// used to send every write to the leader, so the leader was asked to remove
// itself: it cannot hear the outcome of its own removal and answered 504
// unknown_outcome although the removal took effect.) The CLI now sends a
// member's removal to another member.
func TestRemoveLeaderThroughFollower(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, []string{"n1", "n2", "n3"}, []string{"127.0.8.41", "127.0.8.42", "127.0.8.43"})
	l := c.leader(t)
	f := c.followers(t)[0]
	// The CLI finds the leader's HTTP API through the addresses the members
	// publish: wait until the follower knows them all.
	poll(t, 30*time.Second, "the members' API addresses", func() error {
		a, err := f.cluster()
		if err != nil {
			return err
		}
		for _, m := range a.Members {
			if m.APIAddress == "" {
				return fmt.Errorf("%s has published no API address: %+v", m.ID, a.Members)
			}
		}
		if a.Leader != l.id || len(a.Members) != 3 {
			return fmt.Errorf("leader %q, members %+v", a.Leader, a.Members)
		}
		return nil
	})
	if r := cli(t, "remove", l.id, "--addr", f.url(), "--timeout", "30s"); r.code != 0 {
		t.Fatalf("raftkv remove %s --addr %s (leader through a follower): exit %d\nstdout: %s\nstderr: %s",
			l.id, f.id, r.code, r.stdout, r.stderr)
	} else if !strings.Contains(r.stdout, "removed "+l.id) {
		t.Fatalf("raftkv remove %s: %q", l.id, r.stdout)
	}
	// It went to a member other than the leader: the leader would have
	// answered 504 (its API logs the requests that fail), the client then
	// retrying elsewhere and excusing the not_found that follows.
	for _, line := range strings.Split(l.log(l.starts), "\n") {
		if strings.Contains(line, "/v1/cluster/members/") {
			t.Errorf("the removal was sent to the leader removed, %s: %s", l.id, line)
		}
	}
	poll(t, 30*time.Second, "the old leader gone from the members", func() error {
		a, err := f.cluster()
		if err != nil {
			return err
		}
		if len(a.Members) != 2 {
			return fmt.Errorf("members %+v", a.Members)
		}
		for _, m := range a.Members {
			if m.ID == l.id {
				return fmt.Errorf("%s still a member: %+v", l.id, a.Members)
			}
		}
		return nil
	})
}

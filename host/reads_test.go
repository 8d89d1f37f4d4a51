package host_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// TestPartitionedLeaderRefusesReads: a leader cut off from its followers
// refuses leader and linearizable reads from the moment of the cut, while it
// still believes it leads (its lease has not run out: the reads reach
// VerifyLeader), and after the majority has elected a new leader and
// overwritten the value. No read started after the cut is answered (but
// for one that joins a verification whose answers were already in flight),
// so none started after the overwrite was acknowledged returns the old
// value.
func TestPartitionedLeaderRefusesReads(t *testing.T) {
	eachNetwork(t, testPartitionedLeaderRefusesReads)
}

func testPartitionedLeaderRefusesReads(t *testing.T, network string) {
	c := cluster.Start(t, cluster.Options{Nodes: 3, Network: network})
	old := c.Leader()
	mustSet(t, old.Node, "k", "v1")
	c.WaitConverged(3)

	type read struct {
		level         host.Consistency
		start, end    time.Time
		startedLeader bool // old believed it led when the read started
		value         string
		err           error
	}
	var (
		mu    sync.Mutex
		reads []read
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	// The readers stop before the cluster closes, also when the test fails
	// early: a reader must not outlive the node it reads.
	var stopOnce sync.Once
	halt := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(halt)
	levels := []host.Consistency{host.Leader, host.Linearizable}
	c.Isolate(old)
	cut := time.Now()
	for _, lvl := range levels {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r := read{level: lvl, start: time.Now(), startedLeader: old.Node.IsLeader()}
					r.value, r.err = get(t, old.Node, "k", lvl)
					r.end = time.Now()
					mu.Lock()
					reads = append(reads, r)
					mu.Unlock()
					if r.err != nil && !r.startedLeader {
						// A node that knows it does not lead answers at
						// once: pace the loop.
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
				}
			}()
		}
	}

	// The majority elects a new leader, which overwrites k.
	nl := c.LeaderOtherThan(old)
	mustSet(t, nl.Node, "k", "v2")
	acked := time.Now()
	// Reads keep being sent to the old leader until, at each level, two have
	// started and ended after the acknowledgement.
	cluster.Poll(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		after := map[host.Consistency]int{}
		for _, r := range reads {
			if r.start.After(acked) {
				after[r.level]++
			}
		}
		return after[host.Leader] >= 2 && after[host.Linearizable] >= 2
	}, "reads on the old leader did not complete after the overwrite")
	halt()

	// Well below an election timeout: a read answered that soon after the
	// cut cannot miss a newer leader's writes.
	const inFlight = 100 * time.Millisecond
	inLease := map[host.Consistency]bool{}
	for _, r := range reads {
		inLease[r.level] = inLease[r.level] || r.startedLeader
		switch {
		case r.err == nil && r.value == "v1" && r.start.After(acked):
			t.Errorf("%v read started %v after the overwrite was acknowledged returned the old value",
				r.level, r.start.Sub(acked))
		case r.err == nil && r.start.Sub(cut) < inFlight:
			// A verification round whose answers were already on their way
			// (read off the connection before the cut reset it) may still
			// confirm the old leader: no other can be elected that soon.
			t.Logf("%v read started %v after the cut was answered %q (in flight)", r.level, r.start.Sub(cut), r.value)
		case r.err == nil:
			t.Errorf("%v read started %v after the cut was answered %q (it believed it led: %v)",
				r.level, r.start.Sub(cut), r.value, r.startedLeader)
		case !refusal(r.err):
			t.Errorf("%v read on the partitioned leader: unexpected error %v", r.level, r.err)
		}
	}
	for _, lvl := range levels {
		if !inLease[lvl] {
			t.Errorf("no %v read started while the old leader still believed it led: VerifyLeader was not exercised", lvl)
		}
	}
	t.Logf("%d reads on the partitioned leader", len(reads))
	// The old leader still holds v1: a read that skipped the leadership check
	// would have returned it.
	mustGet(t, old.Node, "k", host.Stale, "v1")

	c.Heal()
	cluster.Poll(t, 20*time.Second, func() bool {
		v, err := get(t, old.Node, "k", host.Linearizable)
		return err == nil && v == "v2"
	}, "old leader did not rejoin")
}

// refusal reports whether err is how a node refuses a read it cannot serve
// consistently.
func refusal(err error) bool {
	return errors.Is(err, host.ErrNotLeader) || errors.Is(err, host.ErrNoLeader) ||
		errors.Is(err, host.ErrTimeout)
}

package host

import (
	"testing"
	"time"
)

// TestLeaderCommits: the target is the leader's commit index as of a
// window ago, or the first one heard while every sample is younger; the
// last one heard stays the target of an idle cluster.
func TestLeaderCommits(t *testing.T) {
	l := &leaderCommits{window: time.Second}
	t0 := time.Unix(1000, 0)
	if _, ok := l.target(t0); ok {
		t.Fatal("a target before any request")
	}
	l.observe(t0, 0) // a request without a commit index tells nothing
	if _, ok := l.target(t0); ok {
		t.Fatal("a target from a commit index of 0")
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, c := range []struct {
		ms     int
		commit uint64
	}{{0, 100}, {5, 999}, {300, 110}, {600, 120}, {900, 130}, {1200, 140}, {1500, 150}} {
		l.observe(at(c.ms), c.commit)
	}
	for _, c := range []struct {
		ms   int
		want uint64
	}{
		{1500, 110}, // the newest sample at least 1 s old (at 300 ms); the one at 5 ms fell in the first's bucket
		{1950, 130}, // at 900 ms
		{9000, 150}, // idle: the last one heard
	} {
		if got, ok := l.target(at(c.ms)); !ok || got != c.want {
			t.Errorf("target at %d ms = %d, %v; want %d", c.ms, got, ok, c.want)
		}
	}
	l = &leaderCommits{window: time.Second}
	l.observe(at(0), 500)
	l.observe(at(200), 600)
	if got, _ := l.target(at(300)); got != 500 {
		t.Errorf("every sample younger than the window: target %d, want the first, 500", got)
	}
}

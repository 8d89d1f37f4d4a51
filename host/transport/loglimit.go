package transport

import (
	"sync"
	"time"
)

// logLimit bounds how many lines a kind of event logs: at most burst per
// window, then one line saying how many were left out. Failed and refused
// incoming handshakes are logged one by one, and anyone who reaches the
// Raft port can cause them: 3,000 idle connections wrote 3,000 lines in
// 10 s (attack round 5).
type logLimit struct {
	burst  int
	window time.Duration

	mu      sync.Mutex
	start   time.Time // of the current window
	logged  int       // lines in the current window
	dropped int       // lines left out since the last summary
}

// allow reports whether an event at now may be logged, and how many were
// left out before it (to be said once, with this line).
func (l *logLimit) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.window {
		l.start, l.logged = now, 0
	}
	if l.logged >= l.burst {
		l.dropped++
		return false, 0
	}
	l.logged++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

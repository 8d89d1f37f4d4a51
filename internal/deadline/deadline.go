// Package deadline is a settable deadline whose channel is closed when it
// passes: what a net.Conn built on channels needs behind SetReadDeadline and
// SetWriteDeadline (host/transport's conns over SSH channels, and
// internal/memnet's). The design is net.Pipe's pipeDeadline.
package deadline

import (
	"sync"
	"time"
)

// Deadline is one deadline. A blocked operation selects on Wait; Set may
// move the deadline at any time, also while operations wait.
type Deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline has passed
}

// New returns a Deadline that is not set.
func New() *Deadline { return &Deadline{cancel: make(chan struct{})} }

// Set moves the deadline; the zero time means none, and a time in the past
// closes Wait's channel at once.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close cancel
	}
	d.timer = nil
	passed := isClosed(d.cancel)
	if t.IsZero() {
		if passed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if passed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !passed {
		close(d.cancel)
	}
}

// Wait returns a channel that is closed when the deadline has passed. A
// later Set to a time in the future gives a new channel: select on Wait's
// result afresh for each wait.
func (d *Deadline) Wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

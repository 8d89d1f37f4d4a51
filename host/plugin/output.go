package plugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Counters count, on this node, what a module's limits cut since the module
// was loaded (instances and pools of the module share them).
type Counters struct {
	OutOfFuel           uint64 `json:"out_of_fuel" msgpack:"out_of_fuel"`                       // entries and calls stopped for lack of fuel
	QuotaExceeded       uint64 `json:"quota_exceeded" msgpack:"quota_exceeded"`                 // entries refused by a write or namespace quota
	LogBytesDropped     uint64 `json:"log_bytes_dropped" msgpack:"log_bytes_dropped"`           // log output over Limits.MaxLogBytes
	LogLinesRateLimited uint64 `json:"log_lines_rate_limited" msgpack:"log_lines_rate_limited"` // lines the node log dropped (rate limit)
	LogLinesSuppressed  uint64 `json:"log_lines_suppressed" msgpack:"log_lines_suppressed"`     // lines of replayed entries (SetQuietThrough)
	FuelUsed            uint64 `json:"fuel_used" msgpack:"fuel_used"`                           // by the entries and calls that reported a result
	MaxFuelUsed         uint64 `json:"max_fuel_used" msgpack:"max_fuel_used"`                   // by one of them: compare with the Limits
}

type counters struct {
	OutOfFuel, QuotaExceeded, LogBytesDropped, LogLinesRateLimited, LogLinesSuppressed atomic.Uint64
	FuelUsed, MaxFuelUsed                                                              atomic.Uint64
}

// Counters returns the module's counters.
func (m *Module) Counters() Counters {
	c := m.counters
	return Counters{
		OutOfFuel: c.OutOfFuel.Load(), QuotaExceeded: c.QuotaExceeded.Load(),
		LogBytesDropped: c.LogBytesDropped.Load(), LogLinesRateLimited: c.LogLinesRateLimited.Load(),
		LogLinesSuppressed: c.LogLinesSuppressed.Load(),
		FuelUsed:           c.FuelUsed.Load(), MaxFuelUsed: c.MaxFuelUsed.Load(),
	}
}

// The node log takes at most logBurst lines of a module at once and
// logRate lines a second on average; it drops the rest and says how many.
const (
	logRate  = 50
	logBurst = 200
)

// logLimiter is a token bucket shared by a module's instances.
type logLimiter struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped uint64 // since the last line logged
}

// emit writes one line of the plugin's output to the node log, tagged with
// the plugin's name, unless the entry is replayed or the rate limit is hit.
func (m *Module) emit(quiet bool, lvl slog.Level, msg, source string) {
	if quiet {
		m.counters.LogLinesSuppressed.Add(1)
		return
	}
	l := &m.limiter
	l.mu.Lock()
	now := time.Now()
	if l.last.IsZero() {
		l.tokens = logBurst
	} else {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		l.mu.Unlock()
		m.counters.LogLinesRateLimited.Add(1)
		return
	}
	l.tokens--
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	ctx := context.Background()
	if dropped > 0 {
		m.log.Warn("plugin log lines dropped by the rate limit", "dropped", dropped, "rate", logRate)
	}
	m.log.Log(ctx, lvl, msg, "source", source)
}

// guestOutput receives the guest's stdout and stderr: complete lines go to
// the node log (within the entry's log budget), and the first line of the
// current entry is kept for the message of a trap.
type guestOutput struct {
	c         *call
	partial   []byte // an unterminated line
	first     []byte // the first non-empty line of the current entry, so far
	firstDone bool   // first is complete
}

const (
	maxLine      = 4 << 10 // a longer unterminated line is logged in pieces
	maxFirstLine = 256
)

func (o *guestOutput) Write(p []byte) (int, error) {
	c := o.c
	c.charge(uint64(len(p)))
	n := len(p)
	for len(p) > 0 {
		line, rest, found := strings.Cut(string(p), "\n")
		if !o.firstDone {
			o.first = append(o.first, line[:min(len(line), maxFirstLine-len(o.first))]...)
			if found && len(bytes.TrimSpace(o.first)) > 0 {
				o.firstDone = true
			} else if found {
				o.first = o.first[:0]
			}
		}
		take := c.takeLog(p[:len(line)])
		o.partial = append(o.partial, take...)
		p = []byte(rest)
		if found || len(o.partial) >= maxLine {
			o.flush()
		}
		if !found {
			break
		}
	}
	return n, nil
}

// flush logs the partial line, if any.
func (o *guestOutput) flush() {
	if len(o.partial) > 0 {
		o.c.m.emit(o.c.quiet(), slog.LevelInfo, string(o.partial), "stdout")
		o.partial = o.partial[:0]
	}
}

// newEntry ends the previous entry's output.
func (o *guestOutput) newEntry() {
	o.flush()
	o.first, o.firstDone = o.first[:0], false
}

func (o *guestOutput) firstLine() string { return string(bytes.TrimSpace(o.first)) }

// Determinism: what WASI's clocks and random source return (ABI.md,
// section 5).

// now returns the current entry's time (0 outside an entry) plus the
// nanoseconds the guest slept in this entry plus one per reading, so that
// clocks advance but stay the same on every node.
func (c *call) now() int64 {
	c.clock++
	var base int64
	if e := c.entry(); e != nil {
		base = e.Time
	}
	return base + c.clock
}

func (c *call) walltime() (int64, int32) {
	t := c.now()
	sec, nsec := t/1e9, t%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return sec, int32(nsec)
}

// sleep advances the clocks instead of sleeping.
func (c *call) sleep(ns int64) {
	if ns > 0 {
		c.clock += ns
	}
}

// Read is WASI's random source: a ChaCha8 stream seeded, for every entry,
// from its index and term (zeros outside an entry), charged one fuel unit
// per byte.
func (c *call) Read(p []byte) (int, error) {
	c.charge(uint64(len(p)))
	if c.rng == nil {
		var seed [32]byte
		copy(seed[:16], "raftkv random v1")
		if e := c.entry(); e != nil {
			binary.LittleEndian.PutUint64(seed[16:], e.Index)
			binary.LittleEndian.PutUint64(seed[24:], e.Term)
		}
		c.rng = rand.NewChaCha8(seed)
	}
	return c.rng.Read(p)
}

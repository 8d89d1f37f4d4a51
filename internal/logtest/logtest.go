// Package logtest records log/slog records for tests that check what a
// component logs: levels, messages and attributes, including those added with
// Logger.With.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Record is one logged record, its attributes flattened to strings (groups
// as "group.key").
type Record struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// String is the record in slog's text form, for failure messages.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "level=%s msg=%q", r.Level, r.Message)
	for k, v := range r.Attrs {
		fmt.Fprintf(&b, " %s=%q", k, v)
	}
	return b.String()
}

// Recorder is a slog.Handler that keeps every record at or above its level.
// Safe for concurrent use.
type Recorder struct {
	level slog.Level
	mu    *sync.Mutex
	recs  *[]Record
	attrs []slog.Attr
	group string
}

// New returns a Recorder keeping records at level and above.
func New(level slog.Level) *Recorder {
	return &Recorder{level: level, mu: &sync.Mutex{}, recs: &[]Record{}}
}

// Logger returns a logger writing to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

func (r *Recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }

func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	out := Record{Level: rec.Level, Message: rec.Message, Attrs: map[string]string{}}
	for _, a := range r.attrs {
		flatten(out.Attrs, "", a)
	}
	rec.Attrs(func(a slog.Attr) bool {
		flatten(out.Attrs, r.group, a)
		return true
	})
	r.mu.Lock()
	*r.recs = append(*r.recs, out)
	r.mu.Unlock()
	return nil
}

func flatten(m map[string]string, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	key := a.Key
	if prefix != "" {
		key = prefix + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			flatten(m, key, g)
		}
		return
	}
	m[key] = a.Value.String()
}

func (r *Recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr{}, r.attrs...), prefixed(r.group, attrs)...)
	return &c
}

func prefixed(group string, attrs []slog.Attr) []slog.Attr {
	if group == "" {
		return attrs
	}
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = slog.Attr{Key: group + "." + a.Key, Value: a.Value}
	}
	return out
}

func (r *Recorder) WithGroup(name string) slog.Handler {
	c := *r
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// Records returns the records kept so far that match f (all when f is nil).
func (r *Recorder) Records(f func(Record) bool) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for _, rec := range *r.recs {
		if f == nil || f(rec) {
			out = append(out, rec)
		}
	}
	return out
}

// AtLeast matches records at level l or above.
func AtLeast(l slog.Level) func(Record) bool {
	return func(r Record) bool { return r.Level >= l }
}

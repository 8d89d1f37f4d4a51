package transport

import (
	"testing"
	"time"
)

// logLimit logs burst lines a window, then says how many it left out with
// the next line it logs.
func TestLogLimit(t *testing.T) {
	l := logLimit{burst: 3, window: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, d := l.allow(t0.Add(time.Duration(i) * time.Second)); !ok || d != 0 {
			t.Fatalf("line %d: %v %d", i, ok, d)
		}
	}
	for i := range 1000 {
		if ok, _ := l.allow(t0.Add(5 * time.Second)); ok {
			t.Fatalf("line %d past the burst was allowed", 3+i)
		}
	}
	if ok, d := l.allow(t0.Add(10 * time.Second)); !ok || d != 1000 {
		t.Fatalf("the next window's first line: %v, %d left out (want 1000)", ok, d)
	}
	if ok, d := l.allow(t0.Add(11 * time.Second)); !ok || d != 0 {
		t.Fatalf("then: %v %d", ok, d)
	}
}

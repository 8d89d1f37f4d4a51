package plugin

import (
	"bytes"
	"testing"

	"github.com/raftkv/raftkv/host/plugin/meter"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// TestInstrumentCache: a cached result is the one Instrument gives, per
// module and options, and the cache stays within its size.
func TestInstrumentCache(t *testing.T) {
	wasm := kvwasm.Module
	hash := HashOf(wasm)
	a := meter.Options{Fuel: true, StackSlots: StackSlots, MemoryPages: 512}
	b := a
	b.MemoryPages = 256
	want, err := meter.Instrument(wasm, a)
	if err != nil {
		t.Fatal(err)
	}
	c := newInstrumentCache(len(want) + len(want)/2) // room for one result
	got, err := c.instrument(hash, wasm, a)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first call: %v, equal %v", err, bytes.Equal(got, want))
	}
	if again, _ := c.instrument(hash, wasm, a); &again[0] != &got[0] {
		t.Fatal("second call instrumented again instead of using the cache")
	}
	other, _ := c.instrument(hash, wasm, b)
	if bytes.Equal(other, got) {
		t.Fatal("other options, same result")
	}
	if c.order.Len() != 1 || c.size > c.max {
		t.Fatalf("%d entries, %d bytes cached, max %d", c.order.Len(), c.size, c.max)
	}
	if again, _ := c.instrument(hash, wasm, a); &again[0] == &got[0] || !bytes.Equal(again, want) {
		t.Fatal("an evicted result was not instrumented again, or differs")
	}
}

package meter_test

import (
	"testing"

	"github.com/raftkv/raftkv/host/plugin/meter"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// BenchmarkInstrument instruments the default KV plugin (3.8 MB of Go
// wasm), as every node does when a plugin of that size is deployed.
func BenchmarkInstrument(b *testing.B) {
	b.SetBytes(int64(len(kvwasm.Module)))
	for b.Loop() {
		if _, err := meter.Instrument(kvwasm.Module, meter.Options{Fuel: true, StackSlots: 1 << 20, MemoryPages: 512}); err != nil {
			b.Fatal(err)
		}
	}
}

package plugin_test

import (
	"context"
	"testing"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// BenchmarkLoad measures what the on-disk compilation cache saves a node
// that restarts: loading kv.wasm (compile, validate, instantiate, read its
// info) with an empty cache directory, as on a first start, and with the
// cache a previous run filled, as on a restart.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	load := func(b *testing.B, dir string) {
		cfg := plugin.DefaultConfig()
		cfg.CacheDir = dir
		rt, err := plugin.NewRuntime(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close(ctx)
		m, err := rt.Load(ctx, kvwasm.Module, testOpts)
		if err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
	}
	b.Run("cold", func(b *testing.B) {
		for range b.N {
			load(b, b.TempDir())
		}
	})
	b.Run("cached", func(b *testing.B) {
		dir := b.TempDir()
		load(b, dir) // a previous run of the node
		b.ResetTimer()
		for range b.N {
			load(b, dir)
		}
	})
}

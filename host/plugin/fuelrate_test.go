package plugin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
)

// BenchmarkFuelRate measures how fast hostile workloads burn fuel: each
// iteration runs one call until it is out of fuel (the default budget of
// its kind), and fuel/s is that budget over the time it took. The slowest
// rate bounds how long the largest budget can take: it is what
// plugin.SlowFuelPerSecond must stay below, on a loaded machine.
// (The initloop figure includes compiling the module.)
func BenchmarkFuelRate(b *testing.B) {
	r := newRuntime(b, 0)
	def := plugin.DefaultLimits()
	for _, cmd := range []string{"loop", "loopcalls", "recurse", "statebomb 1000000000 1", "logbomb 1000000000"} {
		b.Run(strings.Fields(cmd)[0], func(b *testing.B) {
			n := newNode(b, r, loadHostile(b, r, testOpts))
			s := state.New()
			ns := s.Namespace("hostile")
			es := batch(1, cmd)
			b.ResetTimer()
			for range b.N {
				var out string
				s.Update(func() {
					res, err := n.in.Apply(context.Background(), ns, es)
					if err != nil {
						b.Fatal(err)
					}
					out = res[0].Code.String()
				})
				if out != "out_of_fuel" {
					b.Fatalf("%s: %s, want out_of_fuel", cmd, out)
				}
			}
			b.ReportMetric(float64(def.ApplyFuel)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mfuel/s")
		})
	}
	b.Run("initloop", func(b *testing.B) {
		wasm := hostileWasm(b, "-X main.initLoop=yes")
		for range b.N {
			if _, err := r.Load(context.Background(), wasm, testOpts); err == nil || !strings.Contains(err.Error(), "out of fuel") {
				b.Fatalf("Load: %v, want out of fuel", err)
			}
		}
		b.ReportMetric(float64(def.LoadFuel)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mfuel/s")
	})
}

// TestDefaultTimeLimitFitsDefaultFuel: the default wall-clock limit gives
// the largest default budget (the load fuel of _initialize, raftkv_info and
// raftkv_migrate) the time it takes at SlowFuelPerSecond, so that a looping
// migration with default limits runs out of fuel (a result, the same on
// every node) rather than stop every node. With the former 60 s it failed:
// 200,000,000 units need 200 s at that rate. And SlowFuelPerSecond is below
// what this machine does, whatever its load: a module whose initialiser
// loops burns the default load fuel at a rate logged here.
func TestDefaultTimeLimitFitsDefaultFuel(t *testing.T) {
	def := plugin.DefaultLimits()
	largest := max(def.ApplyFuel, def.QueryFuel, def.LoadFuel)
	if lim, need := plugin.DefaultConfig().CallTimeout, plugin.FuelTime(largest); lim < need {
		t.Fatalf("default call timeout %v is shorter than the %v that %d fuel may take at %d/s", lim, need, largest, plugin.SlowFuelPerSecond)
	}
	r := newRuntime(t, 0) // the default limit
	wasm := hostileWasm(t, "-X main.initLoop=yes")
	start := time.Now()
	_, err := r.Load(context.Background(), wasm, testOpts)
	took := time.Since(start)
	if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), "out of fuel") {
		t.Fatalf("Load of a module whose initialiser loops: %v, want out of fuel", err)
	}
	rate := float64(testOpts.Limits.LoadFuel) / took.Seconds()
	t.Logf("%d units of load fuel in %v (compiling included): %.1f million/s", testOpts.Limits.LoadFuel, took.Round(time.Millisecond), rate/1e6)
	if rate < plugin.SlowFuelPerSecond {
		t.Errorf("this machine burns fuel at %.0f/s, below SlowFuelPerSecond (%d)", rate, plugin.SlowFuelPerSecond)
	}
}

package host

import (
	"maps"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/internal/hostseam"
)

// The benchmark and test hooks of internal/hostseam: they set Config fields
// that are not part of the API.
func init() {
	hostseam.SetNativePlugins = func(cfg any, natives map[string]plugin.Code) {
		cfg.(*Config).natives = maps.Clone(natives)
	}
	hostseam.SetNetwork = func(cfg any, network transport.Network) {
		cfg.(*Config).network = network
	}
	hostseam.SetRefuseAppends = func(cfg any, refuse func() bool) {
		cfg.(*Config).refuseAppends = refuse
	}
}

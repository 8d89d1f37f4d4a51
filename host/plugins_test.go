package host

import (
	"errors"
	"fmt"
	"testing"

	"github.com/raftkv/raftkv/abi"
)

// TestPluginLimits: a deploy that would take the active plugins past
// MaxPlugins or MaxPluginBytes is refused; a new version replaces the old
// one's bytes.
func TestPluginLimits(t *testing.T) {
	many := make([]PluginInfo, MaxPlugins)
	for i := range many {
		many[i] = PluginInfo{Name: fmt.Sprintf("p%d", i), Size: 1000}
	}
	big := []PluginInfo{{Name: "kv", Size: 4 << 20}, {Name: "a", Size: abi.MaxModuleSize}, {Name: "b", Size: abi.MaxModuleSize}, {Name: "c", Size: abi.MaxModuleSize}}
	for _, tc := range []struct {
		active []PluginInfo
		name   string
		size   int
		ok     bool
	}{
		{many[:MaxPlugins-1], "new", 1000, true},
		{many, "new", 1000, false},
		{many, "p3", 2000, true}, // an upgrade
		{big, "d", MaxPluginBytes - 4<<20 - 3*abi.MaxModuleSize, true},
		{big, "d", MaxPluginBytes - 4<<20 - 3*abi.MaxModuleSize + 1, false},
		{big, "c", abi.MaxModuleSize, true}, // an upgrade of the same size
	} {
		err := checkPluginLimits(tc.active, tc.name, tc.size)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%d active, deploy %s of %d bytes: %v (want ok=%v)", len(tc.active), tc.name, tc.size, err, tc.ok)
		}
	}
}

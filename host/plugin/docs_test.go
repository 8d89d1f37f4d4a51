package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/plugin/meter"
)

// TestDocsMemoryCap: wherever the SDK's documentation and the ABI spec state
// the guest memory's default cap, it is the default limit of a plugin.
func TestDocsMemoryCap(t *testing.T) {
	want := int(plugin.DefaultLimits().MemoryPages) * 64 << 10 >> 20 // MiB
	files, err := filepath.Glob("../../plugins/sdk/*.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../abi/ABI.md")
	// "32 MiB by default", "(default 512 pages of 64 KiB = 32 MiB", "caps it
	// at 32 MiB by default", "(512 pages, 32 MiB, by default".
	re := regexp.MustCompile(`(\d+) MiB,? by default|default \d+ pages of 64 KiB = (\d+) MiB|(\d+) pages, \d+ MiB, by default`)
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			found++
			for i, g := range m[1:] {
				if len(g) == 0 {
					continue
				}
				n, _ := strconv.Atoi(string(g))
				if i == 2 { // pages
					n = n * 64 << 10 >> 20
				}
				if n != want {
					t.Errorf("%s: %q, but the default cap is %d MiB", f, m[0], want)
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no statement of the default memory cap found")
	}
}

// commas formats n with thousands separators, as ABI.md writes numbers.
func commas(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestDocsLimits: the costs, budgets, quotas and rates ABI.md states are the
// code's.
func TestDocsLimits(t *testing.T) {
	b, err := os.ReadFile("../../abi/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ")
	l := plugin.DefaultLimits()
	for _, want := range []string{
		fmt.Sprintf("10 for a call; `memory.grow` %d plus %d per page", meter.GrowBaseCost, meter.GrowPageCost),
		fmt.Sprintf("`memory.init` %d plus one per %d bytes", meter.BulkBaseCost, meter.BulkBytesPerFuel),
		fmt.Sprintf("table bulk operations %d plus one per element", meter.BulkBaseCost),
		fmt.Sprintf("Host functions charge %d per call plus one per byte", plugin.HostCallCost),
		fmt.Sprintf("`apply_fuel` (default %s;", commas(l.ApplyFuel)),
		fmt.Sprintf("`query_fuel` (%s)", commas(l.QueryFuel)),
		fmt.Sprintf("`load_fuel` (%s)", commas(l.LoadFuel)),
		fmt.Sprintf("Each call takes %d + parameters + locals slots of a budget of %s", meter.FrameSlots(0, 0), commas(plugin.StackSlots)),
		fmt.Sprintf("`memory_pages` (default %d pages", l.MemoryPages),
		fmt.Sprintf("`max_write_bytes` (default %d MiB)", l.MaxWriteBytes>>20),
		fmt.Sprintf("`max_namespace_keys` keys (%s)", commas(l.MaxNamespaceKeys)),
		fmt.Sprintf("`max_namespace_bytes` bytes of keys and values (%d GiB)", l.MaxNamespaceBytes>>30),
		fmt.Sprintf("`max_log_bytes` (default %d KiB)", l.MaxLogBytes>>10),
		fmt.Sprintf("at most %d lines a second (bursts of %d)", plugin.LogRate, plugin.LogBurst),
		fmt.Sprintf("a wall-clock limit (default %d s)", plugin.DefaultConfig().CallTimeout/time.Second),
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("ABI.md does not say %q", want)
		}
	}
	if meter.CallCost != 10 {
		t.Errorf("ABI.md says a call costs 10, meter.CallCost is %d", meter.CallCost)
	}
}

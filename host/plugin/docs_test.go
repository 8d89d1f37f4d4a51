package plugin_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/raftkv/raftkv/host/plugin"
)

// TestDocsMemoryCap: wherever the SDK's documentation and the ABI spec state
// the guest memory's default cap, it is the runtime's default.
func TestDocsMemoryCap(t *testing.T) {
	want := int(plugin.DefaultConfig().MemoryLimitPages) * 64 << 10 >> 20 // MiB
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

package sdk_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestModuleGraph: the SDK is its own module, so a plugin that depends on it
// does not pull in the host's dependencies. Its whole module graph (what a
// plugin's go.mod inherits) holds the abi module and the MsgPack library, and
// none of raft, wazero, SSH or the raftkv host module.
func TestModuleGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "all").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m all: %v\n%s", err, out)
	}
	mods := strings.Fields(string(out))
	have := map[string]bool{}
	for _, m := range mods {
		have[m] = true
	}
	for _, want := range []string{"github.com/raftkv/raftkv/plugins/sdk", "github.com/raftkv/raftkv/abi", "github.com/vmihailenco/msgpack/v5"} {
		if !have[want] {
			t.Errorf("module graph lacks %s:\n%s", want, out)
		}
	}
	for _, m := range mods {
		for _, banned := range []string{"github.com/tetratelabs/wazero", "github.com/hashicorp/", "golang.org/x/crypto", "golang.org/x/net"} {
			if strings.HasPrefix(m, banned) {
				t.Errorf("the SDK module depends on %s", m)
			}
		}
		if m == "github.com/raftkv/raftkv" {
			t.Error("the SDK module depends on the raftkv host module")
		}
	}
}

//go:build wasip1

// Command slow is a test plugin that can take as long as asked: its work is
// deterministic (a count of loop iterations), so only a node's wall-clock
// limit (Config.PluginCallTimeout) decides whether it finishes in time.
//
// Commands: "spin N KEY" runs N iterations, then sets KEY to their result;
// "set KEY VALUE"; "init" sets "schema" to the version. Its query answers
// "v<version> schema=<value of schema>", so an answer tells which code read
// which state. Set with -ldflags "-X main.name=value":
//   - version: the version (default "1");
//   - infoSpin: iterations raftkv_info runs (at every load of the module);
//   - migrateSpin: iterations raftkv_migrate runs before it sets "schema" to
//     the version;
//   - refuse: if "yes", raftkv_migrate refuses the upgrade.
//
// Before it spins it logs "spinning in raftkv_apply" (or raftkv_info,
// raftkv_migrate), so a test can tell that the call is under way.
package main

import (
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

var version, infoSpin, migrateSpin, refuse = "1", "0", "0", ""

// spin runs n iterations of a linear congruential generator.
func spin(n int) uint64 {
	x := uint64(1)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

type plugin struct{}

func (plugin) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	f := strings.Fields(string(e.Data))
	switch {
	case len(f) == 3 && f[0] == "spin":
		sdk.Log(sdk.LevelInfo, "spinning in raftkv_apply")
		x := spin(atoi(f[1]))
		return nil, st.Set([]byte(f[2]), strconv.AppendUint(nil, x, 10))
	case len(f) == 3 && f[0] == "set":
		return nil, st.Set([]byte(f[1]), []byte(f[2]))
	case len(f) == 1 && f[0] == "init":
		return nil, st.Set([]byte("schema"), []byte(version))
	}
	return nil, sdk.Errorf(abi.CodeBadRequest, "unknown command %q", e.Data)
}

func (plugin) Query(st sdk.State, q []byte) ([]byte, error) {
	if len(q) > 0 {
		v, _, _ := st.Get(q)
		return v, nil
	}
	v, _, _ := st.Get([]byte("schema"))
	return []byte("v" + version + " schema=" + string(v)), nil
}

func (plugin) Info() abi.Info {
	if n := atoi(infoSpin); n > 0 {
		sdk.Log(sdk.LevelInfo, "spinning in raftkv_info")
		spin(n)
	}
	return abi.Info{Name: "slow", Version: version}
}

func (plugin) Migrate(st sdk.State, m abi.Migration) error {
	if n := atoi(migrateSpin); n > 0 {
		sdk.Log(sdk.LevelInfo, "spinning in raftkv_migrate")
		spin(n)
	}
	if refuse == "yes" {
		return sdk.Errorf(abi.CodeConflict, "v%s refuses to migrate", version)
	}
	return st.Set([]byte("schema"), []byte(version))
}

func init() { sdk.Register(plugin{}) }

func main() {}

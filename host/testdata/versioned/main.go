//go:build wasip1

// Command versioned is a test plugin whose behaviour depends on its version
// (set with -ldflags "-X main.version=N"): "incr" adds N to a counter and
// answers "v<N>:<index>:<total>", so a result tells which code applied it.
// Its migration refuses to run when the key "block" is set.
package main

import (
	"fmt"
	"strconv"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

var version = "1"

type plugin struct{}

func (plugin) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	switch string(e.Data) {
	case "incr":
		v, _, _ := st.Get([]byte("counter"))
		n, _ := strconv.Atoi(string(v))
		step, _ := strconv.Atoi(version)
		n += step
		if err := st.Set([]byte("counter"), []byte(strconv.Itoa(n))); err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, "v%s:%d:%d", version, e.Index, n), nil
	case "block":
		return nil, st.Set([]byte("block"), []byte("1"))
	case "unblock":
		_, err := st.Delete([]byte("block"))
		return nil, err
	}
	return nil, sdk.Errorf(abi.CodeBadRequest, "unknown command %q", e.Data)
}

func (plugin) Query(st sdk.State, q []byte) ([]byte, error) {
	v, _, _ := st.Get([]byte("counter"))
	return v, nil
}

func (plugin) Info() abi.Info { return abi.Info{Name: "versioned", Version: version} }

func (plugin) Migrate(st sdk.State, m abi.Migration) error {
	if _, _, blocked := st.Get([]byte("block")); blocked {
		return sdk.Errorf(abi.CodeConflict, "migration to v%s refused: state is blocked", version)
	}
	return st.Set([]byte("migrated-to"), []byte(version))
}

func init() { sdk.Register(plugin{}) }

func main() {}

//go:build wasip1

// Command nodescriber is the smallest SDK plugin: no sdk.Describer, no
// Migrator, no Appender. It counts its commands; a command answers the new
// count and a query the current one, as MsgPack integers.
package main

import (
	"strconv"

	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/plugins/sdk"
)

type counter struct{}

func count(st sdk.State) uint64 {
	v, _, _ := st.Get([]byte("n"))
	n, _ := strconv.ParseUint(string(v), 10, 64)
	return n
}

func (counter) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	n := count(st) + 1
	if err := st.Set([]byte("n"), strconv.AppendUint(nil, n, 10)); err != nil {
		return nil, err
	}
	return mp.AppendUint(nil, n), nil
}

func (counter) Query(st sdk.State, q []byte) ([]byte, error) {
	return mp.AppendUint(nil, count(st)), nil
}

func init() { sdk.Register(counter{}) }

func main() {}

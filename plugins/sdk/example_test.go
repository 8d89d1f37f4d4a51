package sdk_test

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// Counter counts: the command "inc" adds one, "add N" adds N (N > 0), and
// any query answers the count.
type Counter struct{}

func (Counter) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	delta := 1
	if cmd := string(e.Data); cmd != "inc" {
		n, err := strconv.Atoi(cmd[min(len(cmd), 4):])
		if len(cmd) < 4 || cmd[:4] != "add " || err != nil || n <= 0 {
			return nil, sdk.Errorf(abi.CodeBadRequest, "unknown command %q", cmd)
		}
		delta = n
	}
	v, _, _ := st.Get([]byte("count"))
	n, _ := strconv.Atoi(string(v))
	n += delta
	if err := st.Set([]byte("count"), []byte(strconv.Itoa(n))); err != nil {
		return nil, err
	}
	return []byte(strconv.Itoa(n)), nil
}

func (Counter) Query(st sdk.State, q []byte) ([]byte, error) {
	v, version, ok := st.Get([]byte("count"))
	if !ok {
		return nil, sdk.Errorf(abi.CodeNotFound, "nothing counted yet")
	}
	return fmt.Appendf(nil, "%s (written at index %d)", bytes.Clone(v), version), nil
}

// A plugin runs natively on a MemState, which applies entries as the host
// does: the failed entry leaves no trace.
func Example() {
	st := sdk.NewMemState()
	var p Counter

	fmt.Println(st.Query(p, nil).Err())
	results := st.Apply(p,
		abi.Entry{Index: 1, Term: 1, Data: []byte("inc")},
		abi.Entry{Index: 2, Term: 1, Data: []byte("add 10")},
		abi.Entry{Index: 3, Term: 1, Data: []byte("add -5")},
		abi.Entry{Index: 4, Term: 1, Data: []byte("inc")},
	)
	for _, r := range results {
		if r.OK() {
			fmt.Printf("ok %s\n", r.Data)
		} else {
			fmt.Println(r.Err())
		}
	}
	fmt.Printf("%s\n", st.Query(p, nil).Data)
	// Output:
	// plugin: not_found: nothing counted yet
	// ok 1
	// ok 11
	// plugin: bad_request: unknown command "add -5"
	// ok 12
	// 12 (written at index 4)
}

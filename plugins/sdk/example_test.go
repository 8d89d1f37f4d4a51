package sdk_test

import (
	"fmt"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// The counter of the package documentation: commands and queries are MsgPack
// maps with an "op" field (what the HTTP API makes of a JSON object), and
// results are MsgPack (what it renders back as JSON).
var (
	counter = sdk.NewRouter(abi.Info{Name: "counter", Version: "1.0.0"})
	count   = sdk.NewItem[int64]("n")
)

type add struct {
	N int64 `msgpack:"n"`
}

func init() {
	sdk.Command(counter, "add", func(st sdk.State, e sdk.Entry, req add) (int64, error) {
		if req.N <= 0 {
			return 0, sdk.BadRequest("n must be positive, not %d", req.N)
		}
		return count.Update(st, func(n int64, _ bool) (int64, error) { return n + req.N, nil })
	})
	sdk.Query(counter, "get", func(st sdk.State, _ struct{}) (int64, error) {
		return count.Load(st)
	})
	// In the plugin's main package: sdk.Register(counter)
}

// A plugin runs natively on a MemState, which applies entries as the host
// does: the failed entry leaves no trace.
func Example() {
	st := sdk.NewMemState()
	msg := func(v any) []byte { b, _ := sdk.Marshal(v); return b }

	fmt.Println(st.Query(counter, msg(map[string]any{"op": "get"})).Err())
	results := st.Apply(counter,
		abi.Entry{Index: 1, Term: 1, Data: msg(map[string]any{"op": "add", "n": 1})},
		abi.Entry{Index: 2, Term: 1, Data: msg(map[string]any{"op": "add", "n": 10})},
		abi.Entry{Index: 3, Term: 1, Data: msg(map[string]any{"op": "add", "n": -5})},
		abi.Entry{Index: 4, Term: 1, Data: msg(map[string]any{"op": "inc"})},
	)
	for _, r := range results {
		if r.OK() {
			var n int64
			sdk.Unmarshal(r.Data, &n)
			fmt.Printf("ok %d (MsgPack %x)\n", n, r.Data)
		} else {
			fmt.Println(r.Err())
		}
	}
	fmt.Printf("%x\n", st.Query(counter, msg(map[string]any{"op": "get"})).Data)
	// Output:
	// plugin: not_found: n not found
	// ok 1 (MsgPack 01)
	// ok 11 (MsgPack 0b)
	// plugin: bad_request: n must be positive, not -5
	// plugin: bad_request: unknown command op "inc" (commands: add)
	// 0b
}

// Tally is a Plugin written without the Router: Decode and Result do the
// codec, and the errors are the author's.
type Tally struct{}

func (Tally) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	req, err := sdk.Decode[struct {
		Word string `msgpack:"word"`
	}](e.Data)
	if err != nil {
		return nil, err
	}
	words := sdk.NewMap[string, uint64]("w/", sdk.StringKey)
	n, err := words.Update(st, req.Word, func(n uint64, _ bool) (uint64, error) { return n + 1, nil })
	if err != nil {
		return nil, err
	}
	return sdk.Result(map[string]any{"word": req.Word, "count": n})
}

func (Tally) Query(st sdk.State, q []byte) ([]byte, error) {
	words := sdk.NewMap[string, uint64]("w/", sdk.StringKey)
	out := map[string]uint64{}
	var err error
	for w, n := range words.All(st, &err) {
		out[w] = n
	}
	if err != nil {
		return nil, err
	}
	return sdk.Result(out)
}

func ExamplePlugin() {
	st := sdk.NewMemState()
	for i, w := range []string{"a", "b", "a"} {
		b, _ := sdk.Marshal(map[string]string{"word": w})
		st.Apply(Tally{}, abi.Entry{Index: uint64(i + 1), Data: b})
	}
	var all map[string]uint64
	sdk.Unmarshal(st.Query(Tally{}, nil).Data, &all)
	fmt.Println(all)
	// Output: map[a:2 b:1]
}

// A listing in pages: After continues after the last key of the previous
// page, Collect takes a page and says whether more follow.
func ExampleCollect() {
	st := sdk.NewMemState()
	st.SetIndex(1)
	jobs := sdk.NewMap[uint64, string]("job/", sdk.Uint64Key)
	for id := uint64(1); id <= 5; id++ {
		jobs.Save(st, id, fmt.Sprint("job ", id))
	}
	var err error
	after := uint64(0)
	for {
		ids, names, more := sdk.Collect(jobs.After(st, after, &err), 2)
		fmt.Println(ids, names, more)
		if !more {
			break
		}
		after = ids[len(ids)-1]
	}
	n, _ := jobs.Count(st)
	_, first, _, _ := jobs.PopFirst(st)
	fmt.Println(n, "jobs; popped:", first)
	// Output:
	// [1 2] [job 1 job 2] true
	// [3 4] [job 3 job 4] true
	// [5] [job 5] false
	// 5 jobs; popped: job 1
}

// A paged listing query in one line: Map.List is a query handler that takes
// {"after":k,"limit":n} and answers {"items":[…],"next":k}.
func ExampleMap_List() {
	st := sdk.NewMemState()
	st.SetIndex(1)
	jobs := sdk.NewMap[uint64, string]("job/", sdk.Uint64Key)
	for id := uint64(1); id <= 3; id++ {
		jobs.Save(st, id, fmt.Sprint("job ", id))
	}
	r := sdk.NewRouter(abi.Info{Name: "jobs", Version: "1.0.0"})
	sdk.Query(r, "list", jobs.List)
	q, _ := sdk.Marshal(map[string]any{"op": "list", "limit": 2})
	for {
		var page sdk.Page[uint64, string]
		sdk.Unmarshal(st.Query(r, q).Data, &page)
		fmt.Println(page.Items)
		if page.Next == nil {
			break
		}
		q, _ = sdk.Marshal(map[string]any{"op": "list", "limit": 2, "after": *page.Next})
	}
	// Output:
	// [job 1 job 2]
	// [job 3]
}

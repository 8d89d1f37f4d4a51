package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/internal/wasmbuild"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

// inbufRuntimes returns a runtime that meters wasm and one that trusts it
// (the two ways the host runs a module, with their own instance code paths).
func inbufRuntimes(t *testing.T, wasm []byte) map[string]*plugin.Runtime {
	cfg := plugin.DefaultConfig()
	cfg.MemoryLimitPages = 256
	cfg.CacheDir = testCacheDir
	cfg.Trusted = map[string]bool{plugin.HashOf(wasm): true}
	trusted, err := plugin.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trusted.Close(context.Background()) })
	return map[string]*plugin.Runtime{"metered": newRuntime(t, 0), "trusted": trusted}
}

// TestInputBuffer: a module that offers an input buffer (raftkv_input_buffer,
// ABI v1.2) gets every input that fits written there, with no raftkv_alloc
// call, and a larger one through raftkv_alloc; a module without the export
// (built before v1.2), or one that offers capacity 0, gets every input
// through raftkv_alloc, as before. The test modules answer "ALLOCS:INPUT":
// how many raftkv_alloc calls the instance has had, and the input as they
// found it at the pointer the host passed.
func TestInputBuffer(t *testing.T) {
	big := strings.Repeat("b", 2000) // over the module's 1 KiB buffer
	for _, tc := range []struct {
		name string
		wasm []byte
		cap  uint32
		want []string // answers to q1, q2, big, q3
	}{
		{"with", wasmbuild.Build(t, "./testdata/inbuf/with"), 1024, []string{"0:q1", "0:q2", "1:" + big, "1:q3"}},
		{"without", wasmbuild.Build(t, "./testdata/inbuf/without"), 0, []string{"1:q1", "2:q2", "3:" + big, "4:q3"}},
		{"none", wasmbuild.Build(t, "./testdata/inbuf/with", "-X main.mode=none"), 0, []string{"1:q1", "2:q2", "3:" + big, "4:q3"}},
	} {
		for rname, r := range inbufRuntimes(t, tc.wasm) {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				m, err := r.Load(context.Background(), tc.wasm, testOpts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close(context.Background()) })
				n := newNode(t, r, m)
				if _, c := n.in.InputBuffer(); c != tc.cap {
					t.Fatalf("input buffer capacity %d, want %d", c, tc.cap)
				}
				for i, q := range []string{"q1", "q2", big, "q3"} {
					if got, want := n.query(q), "0:"+tc.want[i]; got != want {
						t.Fatalf("query %d: got %.40q, want %.40q", i, got, want)
					}
				}
				// An apply batch takes the same path: one entry, echoed as
				// the batch encoding the host wrote.
				res := n.apply([]abi.Entry{{Index: 1, Term: 1, Data: []byte("set")}})
				allocs, batch, _ := strings.Cut(strings.TrimPrefix(res[0], "0:"), ":")
				wantAllocs := "1"
				if tc.cap == 0 {
					wantAllocs = "5"
				}
				if allocs != wantAllocs || !strings.HasSuffix(batch, "set") {
					t.Fatalf("apply: %q, want %s raftkv_alloc calls and the batch", res[0], wantAllocs)
				}
			})
		}
	}
}

// TestInputBufferHostile: a module whose raftkv_input_buffer answers a buffer
// that does not lie inside its memory, however it lies, or traps, is refused
// when it is loaded, with a message that says so; the host goes on working.
func TestInputBufferHostile(t *testing.T) {
	for _, tc := range []struct{ mode, want string }{
		{"outside", "raftkv_input_buffer: plugin trapped: it returned the buffer [0xffff0000, +16), which is not inside the guest memory of"},
		{"overflow", "raftkv_input_buffer: plugin trapped: it returned the buffer [0xffffff00, +512), which is not inside the guest memory of"},
		{"huge", ", +4294967295), which is not inside the guest memory of"},
		{"trap", "raftkv_input_buffer: plugin trapped: wasm error: unreachable"},
	} {
		wasm := wasmbuild.Build(t, "./testdata/inbuf/with", "-X main.mode="+tc.mode)
		for rname, r := range inbufRuntimes(t, wasm) {
			t.Run(tc.mode+"/"+rname, func(t *testing.T) {
				m, err := r.Load(context.Background(), wasm, testOpts)
				if err == nil {
					m.Close(context.Background())
					t.Fatalf("Load accepted a module whose raftkv_input_buffer answers %s", tc.mode)
				}
				if !errors.Is(err, plugin.ErrInvalidModule) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load: %v\nwant ErrInvalidModule saying %q", err, tc.want)
				}
				if tc.mode == "trap" && !strings.Contains(err.Error(), "no buffer today") {
					t.Fatalf("Load: %v\nwant the guest's panic message", err)
				}
				// The runtime still loads and runs an honest module.
				ok := wasmbuild.Build(t, "./testdata/inbuf/with")
				m, err = r.Load(context.Background(), ok, testOpts)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close(context.Background())
				if got := newNode(t, r, m).query("q"); got != "0:0:q" {
					t.Fatalf("query after the refusal: %q", got)
				}
			})
		}
	}
}

// TestKVInputBuffer: the Go SDK offers a 64 KiB input buffer, and the KV
// plugin answers the same whether its input arrives there (queries, small
// batches) or through raftkv_alloc (a batch over 64 KiB), alternating, on
// one instance.
func TestKVInputBuffer(t *testing.T) {
	r := newRuntime(t, 0)
	in := kvInstance(t, r)
	if _, c := in.InputBuffer(); c != 64<<10 {
		t.Fatalf("kv.wasm's input buffer: capacity %d, want 64 KiB", c)
	}
	h := newHostTarget(t, in)
	get := func(key string) abi.Result {
		return h.Query(kvstore.Query{Op: kvstore.OpGet, Key: []byte(key)}.AppendMsgpack(nil))
	}
	first := uint64(1)
	for round, n := range []int{10, 1000, 10, 1000, 1} { // 1000 SETs: ~130 KB
		es := setBatch(t, first, n)
		for i := range es { // a value per entry, so that a misplaced input shows
			es[i].Data = kvstore.Command{Op: kvstore.OpSet, Key: []byte(fmt.Sprintf("key-%012d", es[i].Index)), Value: bytes.Repeat([]byte{byte(es[i].Index)}, 100)}.AppendMsgpack(nil)
		}
		for i, res := range h.Apply(es) {
			if !res.OK() {
				t.Fatalf("round %d: entry %d: %v %s", round, i, res.Code, res.Data)
			}
		}
		for _, i := range []uint64{first, first + uint64(n) - 1} {
			res := get(fmt.Sprintf("key-%012d", i))
			if !res.OK() || !bytes.Contains(res.Data, bytes.Repeat([]byte{byte(i)}, 100)) {
				t.Fatalf("round %d: GET key %d: %v %x", round, i, res.Code, res.Data)
			}
		}
		first += uint64(n)
	}
}

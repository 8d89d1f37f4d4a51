// Package wasmtest runs a plugin module on the host's real runtime and
// store, for the tests of plugins built from other languages' sources (the
// C and Rust examples, the Rust SDK): entries applied in one guest call,
// queries answered against the committed state, the module, instance and
// namespace at hand for what a test inspects. (Package plugintest is the
// same for plugin authors, behind a smaller API.)
package wasmtest

import (
	"context"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/state"
)

// Target is an instance of a module applying to a real host store.
type Target struct {
	T     testing.TB
	Mod   *plugin.Module
	In    *plugin.Instance
	Store *state.Store
	NS    *state.Namespace // the plugin's namespace (write it only within Store.Update)
	name  string
}

// New loads wasm as the plugin name with lim on a runtime of cfg, and
// instantiates it; all is closed when the test ends.
func New(t testing.TB, wasm []byte, name string, cfg plugin.Config, lim plugin.Limits) *Target {
	t.Helper()
	ctx := context.Background()
	r, err := plugin.NewRuntime(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(ctx) })
	mod, err := r.Load(ctx, wasm, plugin.LoadOptions{Name: name, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.Instantiate(ctx, mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(ctx) })
	g := &Target{T: t, Mod: mod, In: in, Store: state.New(), name: name}
	g.Store.Update(func() { g.NS = g.Store.Namespace(name) })
	return g
}

// Apply applies entries in one guest call and returns a result for each;
// a host error or a missing result fails the test.
func (g *Target) Apply(entries ...abi.Entry) []abi.Result {
	g.T.Helper()
	var res []abi.Result
	var err error
	g.Store.Update(func() { res, err = g.In.Apply(context.Background(), g.NS, entries) })
	if err != nil {
		g.T.Fatalf("apply: %v", err)
	}
	if len(res) != len(entries) {
		g.T.Fatalf("%d results for %d entries", len(res), len(entries))
	}
	return res
}

// Query answers q (Enc's input) against the committed state.
func (g *Target) Query(q any) abi.Result {
	g.T.Helper()
	view, _ := g.Store.View().Namespace(g.name)
	res, err := g.In.Query(context.Background(), view, Enc(g.T, q))
	if err != nil {
		g.T.Fatalf("query: %v", err)
	}
	return res
}

// Enc encodes v as MsgPack; a []byte is taken as already encoded.
func Enc(t testing.TB, v any) []byte {
	t.Helper()
	if b, ok := v.([]byte); ok {
		return b
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Decode decodes an OK result's data into out; an error result fails the
// test.
func Decode(t testing.TB, r abi.Result, out any) {
	t.Helper()
	if !r.OK() {
		t.Fatalf("unexpected error %v", r.Err())
	}
	if err := msgpack.Unmarshal(r.Data, out); err != nil {
		t.Fatalf("decoding %x: %v", r.Data, err)
	}
}

// Package kvplugin is the default key-value plugin on the Go SDK: package
// kvstore's logic behind sdk.Plugin and sdk.Appender. Package plugins/kv
// builds it into the kv.wasm that raftkv embeds; the host's native engine
// (benchmarks and `raftkv serve --native-kv`) runs it through
// internal/sdknative. The protocol and its codec are kvstore's, which the
// HTTP API uses without linking the SDK.
package kvplugin

import (
	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// KV is the kv plugin. The zero value is ready.
type KV struct{}

var (
	_ sdk.Plugin    = KV{}
	_ sdk.Appender  = KV{}
	_ sdk.Describer = KV{}
)

// Info implements sdk.Describer.
func (KV) Info() abi.Info { return kvstore.KV{}.Info() }

// Apply implements sdk.Plugin.
func (KV) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	return kvstore.KV{}.AppendApply(nil, st, e.Index, e.Data)
}

// Query implements sdk.Plugin.
func (KV) Query(st sdk.State, q []byte) ([]byte, error) { return kvstore.KV{}.AppendQuery(nil, st, q) }

// AppendApply implements sdk.Appender.
func (KV) AppendApply(dst []byte, st sdk.State, e sdk.Entry) ([]byte, error) {
	return kvstore.KV{}.AppendApply(dst, st, e.Index, e.Data)
}

// AppendQuery implements sdk.Appender.
func (KV) AppendQuery(dst []byte, st sdk.State, q []byte) ([]byte, error) {
	return kvstore.KV{}.AppendQuery(dst, st, q)
}

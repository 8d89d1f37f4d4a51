package kvstore

import "github.com/raftkv/raftkv/plugins/sdk"

// sdkKV is KV behind sdk.Plugin, for the tests that run it on sdk.MemState
// (package kvplugin does this for the build, but it imports this package).
type sdkKV struct{}

func (sdkKV) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	return KV{}.AppendApply(nil, st, e.Index, e.Data)
}

func (sdkKV) Query(st sdk.State, q []byte) ([]byte, error) { return KV{}.AppendQuery(nil, st, q) }

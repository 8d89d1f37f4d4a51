// Package kvwasm embeds the default KV plugin, plugins/kv built for wasip1.
//
// kv.wasm is generated and committed; rebuild it after changing plugins/kv,
// plugins/sdk or abi with go generate ./plugins/kv/kvwasm. The build is
// reproducible — the same sources and Go version give the same bytes — thanks
// to -trimpath and -buildvcs=false (otherwise the commit would be embedded
// and every commit would change the module). TestModuleUpToDate checks it.
package kvwasm

import _ "embed"

//go:generate sh -c "cd ../../.. && GOOS=wasip1 GOARCH=wasm go build -trimpath -buildvcs=false -buildmode=c-shared -o plugins/kv/kvwasm/kv.wasm ./plugins/kv"

// Module is the compiled KV plugin (a WebAssembly module implementing ABI
// version 1).
//
//go:embed kv.wasm
var Module []byte

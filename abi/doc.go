// Package abi is the contract between the raftkv host and its WebAssembly
// state-machine plugins: export and import names, the ABI version, the MsgPack
// message types, result codes and size limits.
//
// The full specification, written so it can be implemented in any language
// that targets wasm32, is ABI.md in this directory. This package imports
// nothing of raftkv's and builds for GOOS=wasip1, so the plugin SDK shares
// these definitions with the host.
package abi

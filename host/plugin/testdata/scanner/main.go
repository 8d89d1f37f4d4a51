//go:build wasip1

// Command scanner is a raw-ABI plugin that stores large values and scans
// them with a buffer of a chosen size.
//
//	apply "fill COUNT SIZE": sets keys k00000… to COUNT values of SIZE bytes
//	query "scan LIMIT CAP":  state_scan of every key, at most LIMIT records,
//	                         into a buffer of CAP bytes; answers n as 8
//	                         little-endian bytes, then the buffer's first n
//	                         bytes if n <= CAP
package main

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

//go:wasmimport raftkv state_set
func stateSet(kptr, klen, vptr, vlen uint32) int32

//go:wasmimport raftkv state_scan
func stateScan(sptr, slen, eptr, elen, limit, bufptr, bufcap uint32) int64

//go:wasmimport raftkv result
func result(code, ptr, n uint32)

func ptr(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

var in []byte

//go:wasmexport raftkv_abi_v1
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 {
	if uint32(cap(in)) < n+1 {
		in = make([]byte, n+1)
	}
	return ptr(in)
}

func reply(code uint32, b []byte) { result(code, ptr(b), uint32(len(b))) }

//go:wasmexport raftkv_apply
func apply(p, n uint32) {
	var batch [][]any
	if err := msgpack.Unmarshal(in[:n], &batch); err != nil {
		panic(err)
	}
	for _, e := range batch {
		fill(e[3].([]byte))
	}
}

func fill(data []byte) {
	var count, size int
	if _, err := fmt.Sscanf(string(data), "fill %d %d", &count, &size); err != nil {
		reply(1, []byte(err.Error()))
		return
	}
	v := make([]byte, size)
	for i := range count {
		for j := range v {
			v[j] = byte(i + j)
		}
		k := []byte(fmt.Sprintf("k%05d", i))
		if rc := stateSet(ptr(k), uint32(len(k)), ptr(v), uint32(len(v))); rc != 0 {
			reply(5, []byte(fmt.Sprintf("state_set: %d", rc)))
			return
		}
	}
	reply(0, nil)
}

//go:wasmexport raftkv_query
func query(p, n uint32) {
	var limit, bufcap int
	if _, err := fmt.Sscanf(string(in[:n]), "scan %d %d", &limit, &bufcap); err != nil {
		reply(1, []byte(err.Error()))
		return
	}
	out := make([]byte, 8+bufcap)
	got := stateScan(0, 0, 0, 0, uint32(limit), ptr(out[8:]), uint32(bufcap))
	binary.LittleEndian.PutUint64(out, uint64(got))
	if got >= 0 && got <= int64(bufcap) {
		out = out[:8+got]
	} else {
		out = out[:8]
	}
	reply(0, out)
}

func main() {}

//go:build wasip1

// Command guest is a raftkv test plugin written against the raw ABI (no SDK).
// Commands are text: "set K V", "del K", "get K", "scan PREFIX", "setpanic K V",
// "loop", "oom", "panic", "oob", "hugekey", "hugeresult", "noresult",
// "badalloc", "now". Queries: "get K", "scan PREFIX", "set K V" (must fail read-only), "loop".
package main

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

//go:wasmimport raftkv state_get
func stateGet(kptr, klen, vptr, vcap, verptr uint32) int64

//go:wasmimport raftkv state_set
func stateSet(kptr, klen, vptr, vlen uint32) int32

//go:wasmimport raftkv state_delete
func stateDelete(kptr, klen uint32) int32

//go:wasmimport raftkv state_scan
func stateScan(sptr, slen, eptr, elen, limit, bufptr, bufcap uint32) int64

//go:wasmimport raftkv result
func result(code, ptr, n uint32)

//go:wasmimport raftkv entry_index
func entryIndex() int64

//go:wasmimport raftkv entry_time
func entryTime() int64

func ptr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

var buf []byte
var keep [][]byte // the memory bomb's allocations

//go:wasmexport raftkv_abi_v1
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 {
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	return ptr(buf)
}

func reply(code uint32, s string) {
	b := []byte(s)
	result(code, ptr(b), uint32(len(b)))
}

func get(k string) (string, uint64, bool) {
	kb := []byte(k)
	v := make([]byte, 16)
	var ver [8]byte
	n := stateGet(ptr(kb), uint32(len(kb)), ptr(v), uint32(len(v)), ptr(ver[:]))
	if n < 0 {
		return "", 0, false
	}
	if n > int64(len(v)) {
		v = make([]byte, n)
		stateGet(ptr(kb), uint32(len(kb)), ptr(v), uint32(len(v)), 0)
	}
	return string(v[:n]), binary.LittleEndian.Uint64(ver[:]), true
}

func set(k, v string) int32 {
	kb, vb := []byte(k), []byte(v)
	return stateSet(ptr(kb), uint32(len(kb)), ptr(vb), uint32(len(vb)))
}

func scan(prefix string) string {
	s := []byte(prefix)
	e := append([]byte(prefix), 0xff)
	out := make([]byte, 8)
	n := stateScan(ptr(s), uint32(len(s)), ptr(e), uint32(len(e)), 100, ptr(out), uint32(len(out)))
	if n > int64(len(out)) {
		out = make([]byte, n)
		n = stateScan(ptr(s), uint32(len(s)), ptr(e), uint32(len(e)), 100, ptr(out), uint32(len(out)))
	}
	var recs [][]any
	if err := msgpack.Unmarshal(out[:n], &recs); err != nil {
		return "decode: " + err.Error()
	}
	var parts []string
	for _, r := range recs {
		parts = append(parts, fmt.Sprintf("%s=%s@%v", r[0], r[1], r[2]))
	}
	return strings.Join(parts, ",")
}

func do(cmd string, query bool) {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		reply(1, "empty command")
		return
	}
	switch f[0] {
	case "set":
		if rc := set(f[1], f[2]); rc != 0 {
			reply(5, fmt.Sprintf("state_set rc=%d", rc))
			return
		}
		reply(0, "ok")
	case "set2fail": // two writes then an error: neither may persist
		set(f[1], f[2])
		set(f[1]+"'", f[2])
		reply(3, "refused after writing")
	case "del":
		kb := []byte(f[1])
		reply(0, fmt.Sprint(stateDelete(ptr(kb), uint32(len(kb)))))
	case "get":
		v, ver, ok := get(f[1])
		if !ok {
			reply(2, "not found")
			return
		}
		reply(0, fmt.Sprintf("%s@%d", v, ver))
	case "scan":
		reply(0, scan(f[1]))
	case "setpanic":
		set(f[1], f[2])
		panic("boom after set")
	case "loop":
		for {
		}
	case "oom":
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	case "oob":
		stateSet(0xfffffff0, 64, 0, 0)
		reply(0, "unreachable")
	case "hugekey":
		reply(0, fmt.Sprint(stateSet(0, 1<<30, 0, 0)))
	case "hugeresult":
		result(0, 0, 1<<31)
	case "noresult":
	case "now":
		reply(0, fmt.Sprintf("%d/%d", entryIndex(), entryTime()))
	default:
		reply(1, "unknown command "+f[0])
	}
}

//go:wasmexport raftkv_apply
func apply(p, n uint32) {
	in := unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)
	var batch [][]any
	if err := msgpack.Unmarshal(in, &batch); err != nil {
		panic(err)
	}
	for _, e := range batch {
		do(string(e[3].([]byte)), false)
	}
}

//go:wasmexport raftkv_query
func query(p, n uint32) {
	do(string(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)), true)
}

//go:wasmexport raftkv_migrate
func migrate(p, n uint32) {
	v, _, _ := get("fail-migration")
	if v == "yes" {
		reply(5, "migration refused")
		return
	}
	set("migrated", "yes")
	reply(0, "")
}

func main() {}

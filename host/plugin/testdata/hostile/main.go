//go:build wasip1

// Command hostile is a raw-ABI test plugin that misbehaves on demand: every
// way a deployed plugin can try to stop, exhaust or split a cluster. With
// metering, quotas and the deterministic WASI of host/plugin, each command
// gives the same result on every node and the next command succeeds.
//
// Apply commands (the entry's data, as text):
//
//	set K V        stores V under K; "ok"
//	get K          the value of K, or not_found
//	loop           a tight infinite loop (out_of_fuel)
//	loopcalls      an infinite loop that calls a function (out_of_fuel)
//	recurse        unbounded recursion (out_of_fuel with the default fuel;
//	               with more, trap: call stack exhausted)
//	membomb        allocates 1 MiB blocks forever (trap: out of memory)
//	statebomb N S  writes N values of S bytes, ignoring errors, then reports
//	               ok anyway (too_large once over a quota)
//	logbomb N      N log calls and N stdout lines of 1 KiB; "ok"
//	print TEXT     prints TEXT on stdout; "ok"
//	panic TEXT     panics with TEXT (trap)
//	clock          time.Now before and after a 1 s sleep, Unix ns
//	random         16 bytes of crypto/rand, hex
//	counter        a counter in guest memory, incremented by each call: its
//	               value depends on the instance's history (nondeterministic
//	               across nodes that restarted: replicas diverge)
//	count K        increments the same counter and stores its value under
//	               K: a node whose instance restarted (a snapshot restore,
//	               a restart) writes other values than the others: the
//	               replicas' states diverge, which the digest check reports
//
// Queries: "loop" (out_of_fuel), "clock", "random", "get K". A command or
// query may also be a MsgPack string (a JSON string sent over HTTP).
//
// Link-time flags (-ldflags "-X main.name=value"): initLoop=yes loops in the
// module's initialiser, infoLoop=yes in raftkv_info.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

//go:wasmimport raftkv state_get
func stateGet(kptr, klen, vptr, vcap, verptr uint32) int64

//go:wasmimport raftkv state_set
func stateSet(kptr, klen, vptr, vlen uint32) int32

//go:wasmimport raftkv result
func result(code, ptr, n uint32)

//go:wasmimport raftkv log
func logMsg(level, ptr, n uint32)

var initLoop, infoLoop string

func ptr(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

var (
	in      []byte
	keep    [][]byte // the memory bomb's blocks
	counter int
	sink    uint64
)

func init() {
	if initLoop == "yes" {
		for {
			sink++
		}
	}
}

//go:wasmexport raftkv_abi_v1
func marker() {}

//go:wasmexport raftkv_alloc
func alloc(n uint32) uint32 {
	if uint32(cap(in)) < n+1 {
		in = make([]byte, n+1)
	}
	return ptr(in)
}

func reply(code uint32, s string) {
	b := []byte(s)
	result(code, ptr(b), uint32(len(b)))
}

//go:noinline
func step(i uint64) uint64 { return i*6364136223846793005 + 1442695040888963407 }

//go:noinline
func recurse(n uint64) uint64 { return recurse(n+1) + 1 }

func set(k, v []byte) int32 { return stateSet(ptr(k), uint32(len(k)), ptr(v), uint32(len(v))) }

// text is a command's text: the bytes as they are, or a MsgPack string
// (what the HTTP API makes of a JSON string body, "loop").
func text(b []byte) string {
	var s string
	if len(b) > 0 && (b[0]&0xe0 == 0xa0 || b[0] == 0xd9 || b[0] == 0xda) && msgpack.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

func do(cmd string) {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		reply(1, "empty command")
		return
	}
	switch f[0] {
	case "set":
		if rc := set([]byte(f[1]), []byte(f[2])); rc != 0 {
			reply(4, fmt.Sprintf("state_set rc=%d", rc))
			return
		}
		reply(0, "ok")
	case "get":
		k := []byte(f[1])
		v := make([]byte, 64)
		n := stateGet(ptr(k), uint32(len(k)), ptr(v), uint32(len(v)), 0)
		if n < 0 || n > 64 {
			reply(2, "not found")
			return
		}
		reply(0, string(v[:n]))
	case "loop":
		for {
		}
	case "loopcalls":
		for i := uint64(0); ; i++ {
			sink += step(i)
		}
	case "recurse":
		sink = recurse(0)
	case "membomb":
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	case "statebomb":
		n, _ := strconv.Atoi(f[1])
		size, _ := strconv.Atoi(f[2])
		v := make([]byte, size)
		for i := 0; i < n; i++ {
			set([]byte(fmt.Sprintf("bomb%08d", i)), v)
		}
		reply(0, "ok")
	case "logbomb":
		n, _ := strconv.Atoi(f[1])
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for i := 0; i < n; i++ {
			logMsg(1, ptr(line), uint32(len(line)))
			fmt.Print(string(line))
		}
		reply(0, "ok")
	case "print":
		fmt.Println(strings.Join(f[1:], " "))
		reply(0, "ok")
	case "panic":
		panic(strings.Join(f[1:], " "))
	case "clock":
		before := time.Now().UnixNano()
		time.Sleep(time.Second)
		reply(0, fmt.Sprintf("%d %d", before, time.Now().UnixNano()))
	case "random":
		b := make([]byte, 16)
		rand.Read(b)
		reply(0, hex.EncodeToString(b))
	case "counter":
		counter++
		reply(0, strconv.Itoa(counter))
	case "count":
		counter++
		if rc := set([]byte(f[1]), []byte(strconv.Itoa(counter))); rc != 0 {
			reply(4, fmt.Sprintf("state_set rc=%d", rc))
			return
		}
		reply(0, strconv.Itoa(counter))
	default:
		reply(1, "unknown command "+f[0])
	}
}

//go:wasmexport raftkv_apply
func apply(p, n uint32) {
	var batch [][]any
	if err := msgpack.Unmarshal(in[:n], &batch); err != nil {
		panic(err)
	}
	for _, e := range batch {
		do(text(e[3].([]byte)))
	}
}

//go:wasmexport raftkv_query
func query(p, n uint32) { do(text(in[:n])) }

//go:wasmexport raftkv_info
func info() {
	if infoLoop == "yes" {
		for {
			sink++
		}
	}
	b, _ := msgpack.Marshal(map[string]string{"name": "hostile", "version": "1"})
	result(0, ptr(b), uint32(len(b)))
}

func main() {}

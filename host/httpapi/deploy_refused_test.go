package httpapi

import (
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
)

// infoModule is a raw-ABI module, assembled by hand, whose raftkv_info runs
// body (the function's code, without its locals and final end); init, if
// not nil, is the body of an exported _initialize. It imports raftkv.result
// (function 0) and raftkv.state_set (function 1), has one page of memory
// with "bad" at offset 16, and exports the rest of the ABI as no-ops.
func infoModule(body, init []byte) []byte {
	leb := func(v int) []byte { return binary.AppendUvarint(nil, uint64(v)) }
	vec := func(items ...[]byte) []byte {
		b := leb(len(items))
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	name := func(s string) []byte { return append(leb(len(s)), s...) }
	section := func(id byte, content []byte) []byte {
		return append(append([]byte{id}, leb(len(content))...), content...)
	}
	const i32 = 0x7F
	fn := func(params []byte, results ...byte) []byte {
		return append(append(append([]byte{0x60}, vec(bytesOf(params)...)...), leb(len(results))...), results...)
	}
	types := vec(
		fn([]byte{i32, i32, i32}),           // 0: result
		fn([]byte{i32, i32, i32, i32}, i32), // 1: state_set
		fn(nil),                             // 2: () -> ()
		fn([]byte{i32}, i32),                // 3: raftkv_alloc
		fn([]byte{i32, i32}),                // 4: raftkv_apply, raftkv_query
	)
	imports := vec(
		append(append(name("raftkv"), name("result")...), 0x00, 0),
		append(append(name("raftkv"), name("state_set")...), 0x00, 1),
	)
	funcTypes := [][]byte{{2}, {3}, {4}, {4}, {2}} // functions 2 to 6
	export := func(n string, kind byte, idx int) []byte { return append(append(name(n), kind), leb(idx)...) }
	exports := [][]byte{
		export("memory", 0x02, 0),
		export("raftkv_abi_v1", 0x00, 2),
		export("raftkv_alloc", 0x00, 3),
		export("raftkv_apply", 0x00, 4),
		export("raftkv_query", 0x00, 5),
		export("raftkv_info", 0x00, 6),
	}
	code := func(b []byte) []byte {
		b = append([]byte{0x00}, append(b, 0x0B)...) // no locals; end
		return append(leb(len(b)), b...)
	}
	bodies := [][]byte{
		code(nil),                      // raftkv_abi_v1
		code([]byte{0x41, 0x80, 0x08}), // raftkv_alloc: i32.const 1024
		code(nil),                      // raftkv_apply
		code([]byte{0x41, 0, 0x41, 0, 0x41, 0, 0x10, 0}), // raftkv_query: result(0, 0, 0)
		code(body), // raftkv_info
	}
	if init != nil {
		funcTypes = append(funcTypes, []byte{2})
		exports = append(exports, export("_initialize", 0x00, 7))
		bodies = append(bodies, code(init))
	}
	data := vec(append([]byte{0x00, 0x41, 16, 0x0B}, name("bad")...)) // "bad" at 16
	var m []byte
	m = append(m, "\x00asm\x01\x00\x00\x00"...)
	m = append(m, section(1, types)...)
	m = append(m, section(2, imports)...)
	m = append(m, section(3, vec(funcTypes...))...)
	m = append(m, section(5, vec([]byte{0x01, 1, 1}))...) // memory: 1 page, max 1
	m = append(m, section(7, vec(exports...))...)
	m = append(m, section(10, vec(bodies...))...)
	m = append(m, section(11, data)...)
	return m
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// TestDeployRefusedInfo: a module whose raftkv_info fails, however it fails
// (a trap, no result, a bad result, a forbidden host call, a plugin error,
// running out of fuel), is an invalid module: the deploy answers 400
// bad_request, as a failing initialiser does, with a message that says the
// module was refused and why, not the status of the inner failure.
func TestDeployRefusedInfo(t *testing.T) {
	t.Parallel() // a node of its own: beside the package's other tests
	// The control: a module that exports a working raftkv_info deploys.
	ok := infoModule([]byte{0x41, 2, 0x41, 0, 0x41, 0, 0x10, 0}, nil) // result(2, 0, 0): not_found, no info
	tc := startCluster(t, 1)
	l := tc.leader()
	wantOK(t, do(t, "PUT", l.url+"/v1/plugins/fine", ok, "Content-Type", "application/wasm"))
	for _, c := range []struct {
		name       string
		body, init []byte
		stage, why string // parts of the message
	}{
		{name: "unreachable", body: []byte{0x00}, stage: "raftkv_info failed", why: "unreachable"},
		{name: "no result", body: nil, stage: "raftkv_info failed", why: "without reporting a result"},
		{name: "result outside memory", body: []byte{0x41, 0, 0x41, 0x80, 0x80, 0x04, 0x41, 8, 0x10, 0}, stage: "raftkv_info failed", why: "outside guest memory"}, // result(0, 65536, 8)
		{name: "state_set", body: []byte{0x41, 0, 0x41, 0, 0x41, 0, 0x41, 0, 0x10, 1, 0x1A}, stage: "raftkv_info failed", why: "state written outside"},
		{name: "plugin error", body: []byte{0x41, 5, 0x41, 16, 0x41, 3, 0x10, 0}, stage: "raftkv_info failed", why: "bad"}, // result(5, "bad")
		{name: "loop", body: []byte{0x03, 0x40, 0x0C, 0x00, 0x0B}, stage: "raftkv_info failed", why: "out of fuel"},
		{name: "trapping initialiser", body: nil, init: []byte{0x00}, stage: "does not start", why: "_initialize"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := l.url + "/v1/plugins/bad?load_fuel=1000000"
			r := do(t, "PUT", u, infoModule(c.body, c.init), "Content-Type", "application/wasm")
			e := wantErr(t, r, http.StatusBadRequest, "bad_request")
			if msg := e.Error.Message; !strings.Contains(msg, "invalid module: "+c.stage) || !strings.Contains(msg, c.why) {
				t.Fatalf("message %q: want it to say the module is invalid (%s) and why (%q)", msg, c.stage, c.why)
			}
			if e.Error.PluginCode != nil {
				t.Fatalf("answer %s: a refused deploy is not the plugin's result", r)
			}
		})
	}
	if r := do(t, "GET", l.url+"/v1/plugins/bad", nil); r.status != http.StatusNotFound {
		t.Fatalf("a refused plugin is listed: %s", r)
	}
}

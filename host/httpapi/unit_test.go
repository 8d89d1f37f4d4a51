package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

func TestJSONToMsgpack(t *testing.T) {
	cases := []struct {
		in   string
		want any // decoded with msgpack into any
	}{
		{`{"op":"SET","key":"k","value":"v"}`, map[string]any{"op": "SET", "key": "k", "value": "v"}},
		{`{"n":-1,"u":18446744073709551615,"f":1.5,"e":1e3,"b":true,"z":null,"a":[1,"x",[]]}`,
			map[string]any{"n": int8(-1), "u": uint64(math.MaxUint64), "f": 1.5, "e": 1000.0, "b": true, "z": nil, "a": []any{int8(1), "x", []any{}}}},
		{`{"v":{"$b64":"AP8="}}`, map[string]any{"v": []byte{0, 0xff}}},
		{`{"v":{"$b64":"AP8=","x":1}}`, map[string]any{"v": map[string]any{"$b64": "AP8=", "x": int8(1)}}},
		{`{"v":{"$b64":1}}`, map[string]any{"v": map[string]any{"$b64": int8(1)}}},
		{`{"x":1,"$b64":"AA=="}`, map[string]any{"x": int8(1), "$b64": "AA=="}},
		{`"just a string"`, "just a string"},
		{` 7 `, int8(7)},
		{`[]`, []any{}},
	}
	for _, c := range cases {
		got, err := jsonToMsgpack(nil, []byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if err := abi.Validate(got); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		var v any
		if err := msgpack.Unmarshal(got, &v); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%#v", normalize(v)) != fmt.Sprintf("%#v", normalize(c.want)) {
			t.Errorf("%s → %#v, want %#v", c.in, v, c.want)
		}
	}
	// Key order is kept: the kv plugin's fast path sees a canonical SET.
	got, _ := jsonToMsgpack(nil, []byte(`{"op":"SET","key":"k","value":"v"}`))
	want := mp.AppendMapHeader(nil, 3)
	for _, s := range []string{"op", "SET", "key", "k", "value", "v"} {
		want = mp.AppendString(want, s)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("order: %x, want %x", got, want)
	}
	// Large containers get the right header sizes.
	many := "[" + strings.Repeat("1,", 70000) + "1]"
	got, err := jsonToMsgpack(nil, []byte(many))
	if err != nil || abi.Validate(got) != nil {
		t.Fatalf("big array: %v", err)
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `[1,]`, `{} {}`, `{"a":1}x`, strings.Repeat("[", 65) + strings.Repeat("]", 65),
		`{"v":{"$b64":"*"}}`, `1e400`, `nul`, `{"a":1,"a":2}`, `{"x":[{"a":1,"b":{},"a":2}]}`, `{"$b64":"AA==","$b64":"AA=="}`} {
		if _, err := jsonToMsgpack(nil, []byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if classify(err).status != 400 {
			t.Errorf("%q: %v is not a 400", bad, err)
		}
	}
	if _, err := jsonToMsgpack(nil, []byte(`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`)); err != nil {
		t.Errorf("a name in different objects refused: %v", err)
	}
	if _, err := jsonToMsgpack(nil, []byte(strings.Repeat("[", 64)+strings.Repeat("]", 64))); err != nil {
		t.Errorf("64 levels refused: %v", err)
	}
}

// normalize makes msgpack-decoded values comparable (int widths differ).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := []any{}
		for _, e := range x {
			out = append(out, normalize(e))
		}
		return out
	case int8, int16, int32, int64:
		return fmt.Sprint(x)
	case uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	}
	return v
}

func TestMsgpackToJSON(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f32 := []byte{0xca, 0x3d, 0xcc, 0xcc, 0xcd} // float32 0.1
	cases := []struct {
		in   []byte
		want string
	}{
		{nil, `null`},
		{enc(kvstore.GetResult{Value: []byte("v"), Version: 3}), `{"value":"v","version":3}`},
		{enc(kvstore.GetResult{Value: []byte{0xff}, Version: 3}), `{"value":{"$b64":"/w=="},"version":3}`},
		{enc([]any{int64(-5), int64(-200), int64(math.MinInt64), uint64(math.MaxUint64), 1.5, nil, true, "s\"\n<"}),
			`[-5,-200,-9223372036854775808,18446744073709551615,1.5,null,true,"s\"\n<"]`},
		{f32, `0.1`},
		{enc(math.NaN()), `null`},
		{enc(math.Inf(-1)), `null`},
		{enc(map[int]string{1: "one"}), `{"1":"one"}`},
		{[]byte{0x81, 0xc4, 0x01, 0xff, 0x01}, `{"{\"$b64\":\"/w==\"}":1}`},
		{[]byte{0x81, 0x91, 0x01, 0x02}, `{"[1]":2}`},
		{[]byte{0xd4, 0x05, 0x07}, `{"$ext":5,"$b64":"Bw=="}`},
		{[]byte{0xc7, 0x02, 0xff, 0x01, 0x02}, `{"$ext":-1,"$b64":"AQI="}`},
		{[]byte("not msgpack \xc1"), `{"$b64":"bm90IG1zZ3BhY2sgwQ=="}`},
		{[]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, `{"$b64":"3f////8="}`},
		{[]byte{0xa2, 0xe2, 0x80}, `{"$b64":"4oA="}`}, // str that is not UTF-8
	}
	for _, c := range cases {
		got := msgpackToJSON(nil, c.in)
		if string(got) != c.want {
			t.Errorf("%x → %s, want %s", c.in, got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("%x → invalid JSON %s", c.in, got)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x01\x1f\x7f", "ünï \u2028\u2029 🔑", "<&>", "bad \xff\xfe utf8", "\xe2\x80"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if s == "bad \xff\xfe utf8" {
			want = "bad \ufffd\ufffd utf8"
		}
		if s == "\xe2\x80" {
			want = "\ufffd\ufffd"
		}
		if got != want {
			t.Errorf("%q → %s → %q", s, b, got)
		}
		if string(appendJSONString(nil, []byte(s))) != string(b) {
			t.Errorf("%q: string and []byte differ", s)
		}
	}
}

func TestQueryValue(t *testing.T) {
	cases := []struct {
		raw, name, want string
		ok, err         bool
	}{
		{"", "a", "", false, false},
		{"a=1", "a", "1", true, false},
		{"b=2&a=1&a=3", "a", "", false, true},
		{"a=1&a=1", "a", "", false, true},
		{"a=1&b=1&%61=2", "a", "", false, true},
		{"a=1&ab=2&b=3", "a", "1", true, false},
		{"a", "a", "", true, false},
		{"a=x%2Fy+z", "a", "x/y z", true, false},
		{"%61=1", "a", "1", true, false},
		{"a=%zz", "a", "", false, true},
		{"ab=1", "a", "", false, false},
	}
	for _, c := range cases {
		got, ok, err := queryValue(c.raw, c.name)
		if got != c.want || ok != c.ok || (err != nil) != c.err {
			t.Errorf("queryValue(%q, %q) = %q, %v, %v", c.raw, c.name, got, ok, err)
		}
	}
}

func TestMedia(t *testing.T) {
	for ct, want := range map[string]mediaType{
		"application/json": mediaJSON, "application/json; charset=utf-8": mediaJSON, "application/merge-patch+json": mediaJSON,
		"Application/MsgPack": mediaMsgpack, "application/x-msgpack": mediaMsgpack, "application/vnd.msgpack": mediaMsgpack,
		"application/wasm": mediaWasm, "application/octet-stream": mediaOctet, "text/plain": mediaOther,
		"application/x-www-form-urlencoded": mediaForm, "json": mediaOther,
	} {
		if got := classifyMedia(ct); got != want {
			t.Errorf("%q: %v, want %v", ct, got, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "application/json;q=0.9, application/msgpack")
	if !wantsMsgpack(r) {
		t.Error("Accept with msgpack second")
	}
	r.Header.Set("Accept", "*/*")
	if wantsMsgpack(r) {
		t.Error("*/* is not msgpack")
	}
}

func TestTxnCommand(t *testing.T) {
	cmd, err := txnCommand([]byte(`{"ops":[{"op":"set","key":"a","value":""},{"op":"DELETE","key_b64":"/w==","version":3},{"op":"Cas","key":"c","value_b64":"AA==","version":0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := kvstore.Command{Op: kvstore.OpTxn, Ops: []kvstore.Command{
		{Op: kvstore.OpSet, Key: []byte("a"), Value: []byte{}},
		{Op: kvstore.OpDelete, Key: []byte{0xff}, Version: 3, HasVersion: true},
		{Op: kvstore.OpCAS, Key: []byte("c"), Value: []byte{0}, HasVersion: true},
	}}
	if got, want := cmd.AppendMsgpack(nil), want.AppendMsgpack(nil); !bytes.Equal(got, want) {
		t.Fatalf("%x, want %x", got, want)
	}
	for body, msg := range map[string]string{
		`{"ops":[{"op":"SET","key":"a","value":"1"},{"op":"NOPE","key":"a"}]}`: `ops[1]: unknown op "NOPE"`,
		`{"ops":[{"key":"a"}]}`:                            "ops[0]: missing op",
		`{"ops":[{"op":"CAS","key":"a","value":"1"}]}`:     "ops[0]: missing version",
		`{"ops":[{"op":"TXN","key":"a"}]}`:                 `ops[0]: op "TXN" is not allowed in a TXN (only SET, DELETE and CAS)`,
		`{"ops":[{"op":"SET","key_b64":"a","value":"1"}]}`: "ops[0]: bad key_b64",
	} {
		_, err := txnCommand([]byte(body))
		if err == nil || !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("%s: %v, want %s", body, err, msg)
		}
	}
}

// TestUniqueNames: decodeJSON refuses an object with a name twice, at any
// depth, and accepts a name that recurs in different objects or as a
// string value.
func TestUniqueNames(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"ops":[],"ops":[]}`:                                    false,
		`{"ops":[{"op":"SET","op":"DELETE"}]}`:                   false,
		`{"a":{"b":1,"c":{"d":1,"d":2}}}`:                        false,
		`{"ops":[{"op":"SET"},{"op":"DELETE"}]}`:                 true,
		`{"a":"a","b":["a","a"],"c":{"a":"a"},"d":[{},{"a":1}]}`: true,
		`{"a":[1,{"b":2}],"b":3}`:                                true,
		// Names are compared as encoding/json matches them to fields.
		`{"ops":[],"Ops":[]}`:                            false,
		`{"ops":[{"op":"set","value":"1","VALUE":"2"}]}`: false,
		`{"key":1,"\u212aey":2}`:                         false,
		`{"ops":[{"key":1,"key_b64":2}]}`:                true,
	} {
		var v any
		err := decodeJSON([]byte(body), &v)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", body, err, ok)
		}
	}
}

// TestUniqueKeys: the name set of the JSON converter, across its switch
// from a scan to a map.
func TestUniqueKeys(t *testing.T) {
	var u uniqueKeys[string]
	for i := range 20 {
		if !u.add(fmt.Sprint("k", i)) {
			t.Fatalf("k%d refused as a duplicate", i)
		}
	}
	for _, k := range []string{"k0", "k7", "k8", "k19"} {
		if u.add(k) {
			t.Errorf("%s accepted twice", k)
		}
	}
}

package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi/mp"
)

// rawMP is MsgPack spliced as is into mpMap's output.
type rawMP []byte

// mpMap encodes a MsgPack map of the key/value pairs given, in order and
// with repeats kept (msgpack.Marshal of a Go map cannot repeat a key).
func mpMap(t *testing.T, kv ...any) rawMP {
	return mpAppend(t, mp.AppendMapHeader(nil, len(kv)/2), kv)
}

// mpArray encodes a MsgPack array of the values given.
func mpArray(t *testing.T, vs ...any) rawMP {
	return mpAppend(t, mp.AppendArrayHeader(nil, len(vs)), vs)
}

// mpAppend appends the encodings of vs to b, a rawMP as is.
func mpAppend(t *testing.T, b []byte, vs []any) rawMP {
	t.Helper()
	for _, v := range vs {
		if r, ok := v.(rawMP); ok {
			b = append(b, r...)
			continue
		}
		e, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, e...)
	}
	return b
}

// TestRepeatedInput: a name, map key or query parameter given twice is a 400
// naming it, on every endpoint that reads one, before the node is asked
// (the API here has none).
func TestRepeatedInput(t *testing.T) {
	a := &API{cfg: DefaultConfig()} // no node: every case is refused before one is asked
	type handler func(context.Context, http.ResponseWriter, *http.Request) error
	const (
		js  = "application/json"
		mpk = msgpackCT
	)
	set := func(kv ...any) rawMP {
		return mpMap(t, append([]any{"op", "SET", "key", "k", "value", "v"}, kv...)...)
	}
	bin := func(s string) rawMP { return mp.AppendBytes(nil, []byte(s)) }
	cases := []struct {
		name, method, target, ct string
		body                     any // string or rawMP
		h                        handler
		want                     string // in the message
	}{
		{"txn ops in other case", "POST", "/v1/txn", js,
			`{"ops":[{"op":"SET","key":"ci2","value":"1"}],"Ops":[{"op":"SET","key":"ci3","value":"1"}]}`, a.kvTxn, `the name "Ops" appears twice`},
		{"txn value in other case", "POST", "/v1/txn", js,
			`{"ops":[{"op":"set","key":"ci5","value":"1","VALUE":"2"}]}`, a.kvTxn, `the name "VALUE" appears twice`},
		{"txn key with a Kelvin sign", "POST", "/v1/txn", js,
			`{"ops":[{"op":"set","key":"a","\u212aey":"b","value":"1"}]}`, a.kvTxn, "appears twice"},
		{"trust line in other case", "POST", "/v1/cluster/trust", js, `{"line":"x","Line":"y"}`, a.clusterTrust, `the name "Line" appears twice`},
		{"join id in other case", "POST", "/v1/cluster/join", js, `{"id":"n9","address":"127.0.0.1:1","ID":"n8"}`, a.clusterJoin, `the name "ID" appears twice`},
		{"limits in other case", "PUT", "/v1/plugins/kv/limits", js, `{"apply_fuel":1,"Apply_Fuel":2}`, a.pluginLimits, `the name "Apply_Fuel" appears twice`},

		{"insert key twice", "POST", "/insert-val", mpk,
			rawMP("\x84\xa2op\xa3SET\xa3key\xa3dk1\xa5value\xa1v\xa3key\xa3dk2"), a.seedInsert, `field "key" given twice`},
		{"insert op twice", "POST", "/insert-val", mpk,
			mpMap(t, "op", "SET", "key", "dk3", "value", "v", "op", "DELETE"), a.seedInsert, `field "op" given twice`},
		{"insert key as str and bin", "POST", "/insert-val", mpk, set(bin("key"), "k2"), a.seedInsert, `field "key" given twice`},
		{"insert unknown field twice", "POST", "/insert-val", mpk, set("ttl", 1, "ttl", 2), a.seedInsert, `the key "ttl" appears twice in one map`},
		{"txn msgpack ops twice", "POST", "/v1/txn", mpk,
			mpMap(t, "ops", []any{}, "ops", []any{map[string]any{"op": "DELETE", "key": "k"}}), a.kvTxn, `the key "ops" appears twice`},
		{"txn msgpack op field twice", "POST", "/v1/txn", mpk,
			mpMap(t, "ops", mpArray(t, set("value", "w"))), a.kvTxn, `the key "value" appears twice`},
		{"command msgpack key twice", "POST", "/v1/plugins/kv/commands", mpk, set("key", "k2"), a.pluginCommand, `the key "key" appears twice`},
		{"command msgpack nested key twice", "POST", "/v1/plugins/kv2/commands", mpk,
			set("meta", mpArray(t, mpMap(t, 1, "a", uint16(1), "b"))), a.pluginCommand, `the key 1 appears twice`},
		{"query msgpack key twice", "POST", "/v1/plugins/kv/queries", mpk,
			mpMap(t, "op", "GET", "key", "a", "key", "b"), a.pluginQuery, `the key "key" appears twice`},

		{"list limit twice", "GET", "/v1/kv?limit=1&limit=2", "", "", a.kvList, "limit is given more than once"},
		{"list prefix twice", "GET", "/v1/kv?prefix=a&prefix=b", "", "", a.kvList, "prefix is given more than once"},
		{"list start twice", "GET", "/v1/kv?start=a&start=a", "", "", a.kvList, "start is given more than once"},
		{"list end twice", "GET", "/v1/kv?end=a&%65nd=b", "", "", a.kvList, "end is given more than once"},
		{"list consistency twice", "GET", "/v1/kv?consistency=stale&consistency=leader", "", "", a.kvList, "consistency is given more than once"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body string
			switch b := c.body.(type) {
			case string:
				body = b
			case rawMP:
				body = string(b)
			}
			r := httptest.NewRequest(c.method, c.target, strings.NewReader(body))
			if c.ct != "" {
				r.Header.Set("Content-Type", c.ct)
			}
			if name, _, ok := strings.Cut(strings.TrimPrefix(c.target, "/v1/plugins/"), "/"); ok && strings.HasPrefix(c.target, "/v1/plugins/") {
				r.SetPathValue("name", name)
			}
			err := c.h(context.Background(), httptest.NewRecorder(), r)
			if err == nil {
				t.Fatal("accepted")
			}
			if e := classify(err); e.status != 400 || !strings.Contains(e.message, c.want) {
				t.Fatalf("%d %q, want 400 with %q", e.status, e.message, c.want)
			}
		})
	}
}

// TestFoldName: two names are the same to uniqueNames exactly when
// encoding/json matches one to a field named with the other.
func TestFoldName(t *testing.T) {
	fields := []string{"key", "KEY", "Key", "kEy", "\u212aey", "ke", "key_b64", "KEY_B64", "s", "S", "\u017f",
		"é", "É", "ß", "ẞ", "σ", "Σ", "ς", "ǅ", "ǆ", "Ǆ"}
	names := append([]string{"\xff", "\ufffd", "F", ""}, fields...) // no valid tag
	for _, field := range fields {
		typ := reflect.StructOf([]reflect.StructField{{
			Name: "F", Type: reflect.TypeFor[*int](), Tag: reflect.StructTag(`json:"` + field + `"`),
		}})
		for _, name := range names {
			v := reflect.New(typ)
			if err := json.Unmarshal([]byte(`{`+string(appendJSONString(nil, name))+`:1}`), v.Interface()); err != nil {
				t.Fatal(err)
			}
			matched := !v.Elem().Field(0).IsNil()
			if same := foldName(name) == foldName(field); same != matched {
				t.Errorf("%q and field %q: folded alike %v, encoding/json matches %v", name, field, same, matched)
			}
		}
	}
}

// TestUniqueMapKeys: the MsgPack check refuses a key twice in any map, at
// any depth, telling str and bin apart from neither each other nor two
// encodings of one integer, and accepts a key that recurs in different maps.
func TestUniqueMapKeys(t *testing.T) {
	bin := func(s string) rawMP { return mp.AppendBytes(nil, []byte(s)) }
	u8 := rawMP{0xcc, 7}
	for _, c := range []struct {
		name string
		b    rawMP
		want string // "" for accepted
	}{
		{"distinct", mpMap(t, "a", 1, "b", 2, 1, 3, nil, 4, 1.5, 5), ""},
		{"in different maps", mpMap(t, "a", mpMap(t, "a", 1), "b", mpArray(t, mpMap(t, "a", 1), mpMap(t, "a", 2))), ""},
		{"str and int", mpMap(t, "7", 1, 7, 2), ""},
		{"not a map", rawMP{0x93, 1, 1, 1}, ""},
		{"str twice", mpMap(t, "a", 1, "b", 2, "a", 3), `the key "a" appears twice in one map`},
		{"str and bin", mpMap(t, "a", 1, bin("a"), 2), `the key "a" appears twice`},
		{"int encodings", mpMap(t, 7, 1, u8, 2), `the key 7 appears twice`},
		{"nil twice", mpMap(t, nil, 1, nil, 2), `the key null appears twice`},
		{"nested", mpMap(t, "a", mpArray(t, 1, mpMap(t, "x", 1, "y", 2, "x", 3))), `the key "x" appears twice`},
		{"past the scan", mpMap(t, "k0", 0, "k1", 1, "k2", 2, "k3", 3, "k4", 4, "k5", 5, "k6", 6, "k7", 7, "k8", 8, "k3", 9), `the key "k3" appears twice`},
		{"too deep", rawMP(strings.Repeat("\x91", 65) + "\x01"), "nested deeper than 64 levels"},
	} {
		err := uniqueMapKeys(c.b)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || classify(err).status != 400 || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want a 400 with %q", c.name, err, c.want)
		}
	}
}

package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

// FuzzJSONBody feeds JSON request bodies to the decoders of /v1/txn and the
// plugin endpoints: they must never panic, and what they accept must be
// MsgPack that the ABI's validator and the kv plugin's parser take.
func FuzzJSONBody(f *testing.F) {
	for _, s := range []string{
		`{"op":"SET","key":"k","value":"v"}`,
		`{"op":"GET","key":"k"}`,
		`{"ops":[{"op":"SET","key":"a","value":"1"},{"op":"DELETE","key":"b"},{"op":"CAS","key":"c","value":"x","version":0}]}`,
		`{"ops":[{"op":"SET","key_b64":"/w==","value_b64":"AA=="}]}`,
		`{"ops":[{"op":"DELETE","key":"b","version":18446744073709551615}]}`,
		`{"v":{"$b64":"AP8="},"n":-1,"f":1.5e300,"a":[[[]]],"z":null,"t":true}`,
		`[1,2,{"$b64":"x"}]`, `"\u2028\ud800"`, `{"a":1}{}`, `[[[[[[[[[[[[[[[[[[[[`, `1e400`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if mp, err := jsonToMsgpack(nil, body); err == nil {
			if err := abi.Validate(mp); err != nil {
				t.Fatalf("jsonToMsgpack(%q) = %x: %v", body, mp, err)
			}
			if !json.Valid(msgpackToJSON(nil, mp)) {
				t.Fatalf("round trip of %q is not JSON", body)
			}
			kvstore.ParseCommand(mp)
			kvstore.ParseQuery(mp)
		} else if classify(err).status != 400 {
			t.Fatalf("jsonToMsgpack(%q): %v is not a 400", body, err)
		}
		if json.Valid(body) {
			if _, err := jsonToMsgpack(nil, body); err != nil && classify(err).status != 400 {
				t.Fatal(err)
			}
		}
		cmd, err := txnCommand(body)
		if err != nil {
			if classify(err).status != 400 {
				t.Fatalf("txnCommand(%q): %v is not a 400", body, err)
			}
			return
		}
		enc := cmd.AppendMsgpack(nil)
		if err := abi.Validate(enc); err != nil {
			t.Fatalf("txnCommand(%q) encodes to invalid MsgPack: %v", body, err)
		}
		if _, err := kvstore.ParseCommand(enc); err != nil {
			if s := classify(err).status; s != 400 && s != 413 {
				t.Fatalf("txnCommand(%q): plugin check %v is a %d", body, err, s)
			}
		}
	})
}

// FuzzMsgpackBody feeds MsgPack request bodies and plugin results to the
// MsgPack decoders: /v1/txn and /insert-val bodies, and the conversion of a
// result to JSON, which must always be valid JSON.
func FuzzMsgpackBody(f *testing.F) {
	for _, b := range [][]byte{
		seedCommand("SET", "hello", "world"),
		seedCommand("DELETE", "hello", ""),
		{0x81, 0xa3, 'o', 'p', 's', 0x91, 0x83, 0xa2, 'o', 'p', 0xa3, 'S', 'E', 'T', 0xa3, 'k', 'e', 'y', 0xa1, 'k', 0xa5, 'v', 'a', 'l', 'u', 'e', 0xc4, 0x01, 0xff},
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0xdb, 0x7f, 0xff, 0xff, 0xff},
		{0xd4, 0x05, 0x07},
		{0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0},
		{0x81, 0x91, 0xc0, 0xc1},
		{},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(msgpackToJSON(nil, body)) {
			t.Fatalf("msgpackToJSON(%x) is not JSON: %s", body, msgpackToJSON(nil, body))
		}
		if cmd, err := msgpackTxnCommand(nil, body); err == nil {
			if err := abi.Validate(cmd); err != nil {
				t.Fatalf("msgpackTxnCommand(%x) = %x: %v", body, cmd, err)
			}
			kvstore.ParseCommand(cmd)
		} else if classify(err).status != 400 {
			t.Fatalf("msgpackTxnCommand(%x): %v is not a 400", body, err)
		}
		if _, err := kvstore.ParseCommand(body); err != nil {
			if s := classify(err).status; s != 400 && s != 413 {
				t.Fatalf("ParseCommand(%x): %v is a %d", body, err, s)
			}
		}
		kvstore.ParseGetResult(body)
		kvstore.ParseSetResult(body)
		kvstore.ParseDeleteResult(body)
		kvstore.ParseListResult(body)
	})
}

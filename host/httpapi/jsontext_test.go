package httpapi

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestJSONTextChanged: JSON that encoding/json would decode with U+FFFD in
// place of what was sent (bytes that are not UTF-8, half a surrogate pair)
// is a 400 on every JSON endpoint, before a node is asked: a key "k\ud83d"
// was stored as "k" and EF BF BD (attacker audit). Whole pairs and every
// other escape pass.
func TestJSONTextChanged(t *testing.T) {
	a := &API{cfg: DefaultConfig()} // no node: every case is refused before one is asked
	for _, c := range []struct{ name, body, want string }{
		{"lone high surrogate", `{"op":"SET","key":"k\ud83d","value":"x"}`, "first half of a surrogate pair"},
		{"high then not low", `{"op":"SET","key":"k\ud83d\u0041","value":"x"}`, "first half"},
		{"lone low surrogate", `{"op":"SET","key":"k","value":"\udc00"}`, "second half"},
		{"raw bytes not UTF-8", "{\"op\":\"SET\",\"key\":\"\xff\xfe\",\"value\":\"x\"}", "not UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, target := range []string{"/v1/plugins/kv/commands", "/v1/txn"} {
				body := c.body
				h := a.pluginCommand
				if target == "/v1/txn" {
					body, h = `{"ops":[`+c.body+`]}`, a.kvTxn
				}
				r := httptest.NewRequest("POST", target, strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				r.SetPathValue("name", "kv")
				err := h(context.Background(), httptest.NewRecorder(), r)
				if e := classify(err); err == nil || e.status != 400 || !strings.Contains(e.message, c.want) {
					t.Fatalf("%s: %v, want 400 with %q", target, err, c.want)
				}
			}
		})
	}
	for _, ok := range []string{`"k\ud83d\ude00"`, `"\\ud83d"`, `"\u00e9\n\t\"\\"`, `"é😀"`, `"\\\\ud800"`} {
		if err := checkJSONText([]byte(ok)); err != nil {
			t.Errorf("checkJSONText(%s): %v", ok, err)
		}
	}
}

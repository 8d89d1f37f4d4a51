package httpapi

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// Benchmarks of the kv endpoints through the handler (no network), one
// request at a time, to measure the time and allocations of building each
// kv command or query and decoding its result:
//
//	go test -run '^$' -bench 'HandlerKV' -benchmem ./host/httpapi/
func BenchmarkHandlerKV(b *testing.B) {
	_, h := benchNode(b)
	do := func(b *testing.B, method, target, body string) {
		r := httptest.NewRequest(method, "http://localhost"+target, strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body)
		}
	}
	value := strings.Repeat("v", 100)
	for _, k := range []string{"a", "b", "c"} {
		do(b, "PUT", "/v1/kv/list/"+k, value)
	}
	do(b, "PUT", "/v1/kv/bench", value)
	cases := []struct {
		name, method, target, body string
	}{
		{"Put", "PUT", "/v1/kv/bench", value},
		{"Get", "GET", "/v1/kv/bench?consistency=stale", ""},
		{"Delete", "DELETE", "/v1/kv/absent", ""},
		{"List", "GET", "/v1/kv?prefix=list/&consistency=stale", ""},
		{"Txn", "POST", "/v1/txn", `{"ops":[{"op":"SET","key":"t","value":"1"},{"op":"DELETE","key":"u"}]}`},
		{"SeedGet", "GET", "/get-val?key=bench&consistency=stale", ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.body)
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(c.method, "http://localhost"+c.target, bytes.NewReader(body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

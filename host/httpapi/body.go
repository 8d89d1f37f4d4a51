package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// mediaType is the kind of a Content-Type.
type mediaType uint8

const (
	mediaNone    mediaType = iota // no Content-Type
	mediaJSON                     // application/json, */*+json
	mediaMsgpack                  // application/msgpack, x-msgpack, vnd.msgpack
	mediaWasm                     // application/wasm
	mediaOctet                    // application/octet-stream
	mediaForm                     // application/x-www-form-urlencoded: what curl -d sends
	mediaOther
)

// requestMedia classifies the request's Content-Type (parameters ignored)
// and returns it as sent.
func requestMedia(r *http.Request) (mediaType, string) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return mediaNone, ""
	}
	return classifyMedia(ct), ct
}

func classifyMedia(ct string) mediaType {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, "application/json"),
		len(mt) > 5 && strings.EqualFold(mt[len(mt)-5:], "+json"):
		return mediaJSON
	case strings.EqualFold(mt, "application/msgpack"), strings.EqualFold(mt, "application/x-msgpack"),
		strings.EqualFold(mt, "application/vnd.msgpack"):
		return mediaMsgpack
	case strings.EqualFold(mt, "application/wasm"):
		return mediaWasm
	case strings.EqualFold(mt, "application/octet-stream"):
		return mediaOctet
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		return mediaForm
	}
	return mediaOther
}

// wantsMsgpack reports whether the Accept header asks for MsgPack.
func wantsMsgpack(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	for accept != "" {
		var part string
		part, accept, _ = strings.Cut(accept, ",")
		if classifyMedia(part) == mediaMsgpack {
			return true
		}
	}
	return false
}

// buffer is a pooled byte slice for request bodies and commands.
type buffer struct{ b []byte }

// maxPooled is the largest buffer kept for reuse.
const maxPooled = 256 << 10

var bufPool = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 4<<10)} }}

func getBuffer() *buffer { return bufPool.Get().(*buffer) }

func (b *buffer) free() {
	if cap(b.b) > maxPooled {
		return
	}
	b.b = b.b[:0]
	bufPool.Put(b)
}

// bodyChunk is the first allocation for a body that does not fit dst, and
// the least a body buffer grows by.
const bodyChunk = 64 << 10

// readBody appends the request body to dst. A body longer than limit fails
// with 413 (before anything is read when Content-Length says so). The buffer
// grows as bytes arrive, never to more than twice what has arrived plus
// bodyChunk, so a Content-Length that is announced and not sent reserves no
// memory. The read is bounded in time (see timedBody).
func readBody(w http.ResponseWriter, r *http.Request, dst []byte, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return dst, tooLarge("request body of %d bytes exceeds the %d-byte limit", r.ContentLength, limit)
	}
	if r.ContentLength == 0 {
		return dst, nil
	}
	body := newTimedBody(w, r.Body)
	if r.ContentLength < 0 {
		body = http.MaxBytesReader(rawWriter(w), body, limit)
	} // else net/http stops the body at Content-Length
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			got := len(dst) - start
			n := max(bodyChunk, got)
			if r.ContentLength > 0 {
				n = min(n, max(1, int(r.ContentLength)-got))
			}
			dst = slices.Grow(dst, n)
		}
		n, err := body.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			if got := len(dst) - start; r.ContentLength > 0 && int64(got) != r.ContentLength {
				// net/http's own bodies report this as io.ErrUnexpectedEOF.
				return dst[:start], badRequest("reading the request body: %d bytes of the %d announced", got, r.ContentLength)
			}
			return dst, nil
		}
		if err != nil {
			return dst[:start], bodyErr(err)
		}
	}
}

// timedBody bounds the reading of a request body in time. When a request
// with a body arrives, serve sets a read deadline on its connection:
// Config.RequestTimeout for the whole body, or, on the deploy and restore
// routes, Config.StreamIdleTimeout, which timedBody pushes forward before
// every read so that a long upload only has to keep making progress. A read
// past the deadline fails, and the server closes the connection rather than
// wait for the rest. At the end of the body timedBody lifts the deadline, so
// that a handler that works long after reading its body (a deploy compiles
// the module, a restore installs it) is not cut off by net/http's background
// read of the connection.
type timedBody struct {
	body io.ReadCloser
	sw   *statusWriter
	done bool
	err  error // the read error that ended the body, if not io.EOF
}

// bodyReadErr returns the error that cut short a body returned by
// newTimedBody, or nil.
func bodyReadErr(body io.ReadCloser) error {
	if b, ok := body.(*timedBody); ok {
		return b.err
	}
	return nil
}

// newTimedBody returns body bounded in time, without allocating: the
// request's statusWriter holds its timedBody.
func newTimedBody(w http.ResponseWriter, body io.ReadCloser) io.ReadCloser {
	sw, ok := w.(*statusWriter)
	if !ok {
		return body
	}
	if sw.body.sw == nil { // the first read of this request's body
		sw.body = timedBody{body: body, sw: sw}
	}
	return &sw.body
}

func (b *timedBody) Close() error { return b.body.Close() }

func (b *timedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.body.Read(p)
	}
	if b.sw.bodyIdle > 0 {
		b.sw.setReadDeadline(time.Now().Add(b.sw.bodyIdle))
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.done = true
		if err == io.EOF {
			b.sw.setReadDeadline(time.Time{})
		} else {
			b.err = err
		}
	}
	return n, err
}

func bodyErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return &httpError{Status: http.StatusRequestTimeout, Code: "request_timeout",
			Message: "reading the request body: it did not arrive in time"}
	}
	return badRequest("reading the request body: %v", err)
}

// queryValue returns the value of the query parameter name in a raw query,
// without parsing the rest into a map. A parameter given twice is refused
// (?cas=1&cas=2: which did the client mean?).
func queryValue(raw, name string) (string, bool, error) {
	v, found, err := queryValueFrom(&raw, name)
	if err != nil || !found {
		return v, found, err
	}
	if _, again, err := queryValueFrom(&raw, name); err != nil {
		return "", false, err
	} else if again {
		return "", false, badRequest("query parameter %s is given more than once", name)
	}
	return v, true, nil
}

// queryValueFrom returns the first value of name in *raw and leaves in *raw
// the query after it.
func queryValueFrom(rawp *string, name string) (string, bool, error) {
	raw := *rawp
	defer func() { *rawp = raw }()
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			var err error
			if k, err = url.QueryUnescape(k); err != nil {
				return "", false, badRequest("malformed query string: %v", err)
			}
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			var err error
			if v, err = url.QueryUnescape(v); err != nil {
				return "", false, badRequest("malformed query parameter %s: %v", name, err)
			}
		}
		return v, true, nil
	}
	return "", false, nil
}

// uintParam parses an optional non-negative integer query parameter.
func uintParam(r *http.Request, name string) (v uint64, ok bool, err error) {
	s, ok, err := queryValue(r.URL.RawQuery, name)
	if err != nil || !ok {
		return 0, false, err
	}
	v, perr := strconv.ParseUint(s, 10, 64)
	if perr != nil {
		return 0, false, badRequest("bad %s value %q: want a non-negative integer", name, s)
	}
	return v, true, nil
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		var r rune
		var size int
		switch v := any(s).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, size = utf8.DecodeRune(v[i:])
		}
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // valid JSON, but not JavaScript
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// writeJSON answers 200 with v encoded as JSON.
func writeJSON(w http.ResponseWriter, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	writeJSONBytes(w, b.Bytes())
	return nil
}

// Header values shared by every answer (net/http only reads them).
var (
	ctJSON        = []string{"application/json"}
	ctOctetStream = []string{"application/octet-stream"}
)

// writeJSONBytes answers 200 with an encoded JSON document.
func writeJSONBytes(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = ctJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// decodeJSON decodes a JSON body into v (a struct), rejecting unknown
// fields, duplicate names and trailing data.
func decodeJSON(body []byte, v any) error {
	if err := checkJSONText(body); err != nil {
		return err
	}
	if err := uniqueNames(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON body: data after the JSON value")
	}
	return nil
}

// checkJSONText refuses JSON text that encoding/json would decode with
// U+FFFD in place of what was sent: bytes that are not UTF-8 (RFC 8259
// requires it), and a \u escape of half a surrogate pair. A key or value
// stored silently changed is worse than a 400 (binary goes as {"$b64":…}).
// Backslashes occur only in strings in JSON, so every escape is found by
// a scan of the raw text.
func checkJSONText(body []byte) error {
	if !utf8.Valid(body) {
		return badRequest("malformed JSON body: not UTF-8 (send binary as {\"$b64\": \"…\"})")
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if i >= len(body) || body[i] != 'u' {
			continue
		}
		r, ok := hex4(body[i+1:])
		if !ok {
			continue // the decoder refuses it
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return badRequest("malformed JSON body: \\u%04X is the second half of a surrogate pair, alone", r)
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := rune(0), false
			if i+2 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
				lo, ok = hex4(body[i+3:])
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return badRequest("malformed JSON body: \\u%04X is the first half of a surrogate pair, alone", r)
			}
			i += 6
		}
	}
	return nil
}

// hex4 decodes the 4 hex digits b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(v), err == nil
}

// jsonBody reads a JSON body: Content-Type application/json, none, or what
// curl -d sends.
func (a *API) jsonBody(w http.ResponseWriter, r *http.Request, dst []byte) ([]byte, error) {
	switch mt, ct := requestMedia(r); mt {
	case mediaJSON, mediaNone, mediaForm:
	default:
		return dst, unsupportedMedia(ct, "application/json")
	}
	return readBody(w, r, dst, a.cfg.MaxBodyBytes)
}

// uniqueNames refuses a JSON text in which an object has a name twice
// (encoding/json keeps the last: {"ops":[…],"ops":[…]} would run the second
// list silently). Names are compared as encoding/json matches them to a
// struct's fields, ignoring case ("ops" and "Ops" are the same field), so
// decodeJSON's targets are structs: a map's keys would not be the same.
// Malformed JSON passes, for the decoder to refuse.
func uniqueNames(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var seen []*uniqueKeys[string] // one per open object; nil for an array
	inObject := func() bool { return len(seen) > 0 && seen[len(seen)-1] != nil }
	expectName := true // in an object, whether the next string is a name
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				seen = append(seen, new(uniqueKeys[string]))
				expectName = true
				continue
			case '[':
				seen = append(seen, nil)
			default:
				seen = seen[:len(seen)-1]
			}
		case string:
			if inObject() && expectName {
				if !seen[len(seen)-1].add(foldName(t)) {
					return badRequest("malformed JSON body: the name %q appears twice in one object (names ignore case)", t)
				}
				expectName = false
				continue
			}
		}
		expectName = true // a value ended: a name comes next, if in an object
	}
}

// foldName returns name folded as encoding/json folds a name to match it to
// a field (its foldName): ASCII letters upper-cased, any other rune the
// smallest of its Unicode case-folding orbit ("K" for the Kelvin sign).
func foldName(name string) string {
	i := 0
	for i < len(name) && name[i] < utf8.RuneSelf && (name[i] < 'a' || name[i] > 'z') {
		i++
	}
	if i == len(name) {
		return name // nothing to fold: the usual case, without allocating
	}
	b := make([]byte, i, len(name))
	copy(b, name)
	for _, r := range name[i:] {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b = append(b, byte(r))
			continue
		}
		for {
			f := unicode.SimpleFold(r)
			if f <= r {
				r = f
				break
			}
			r = f
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

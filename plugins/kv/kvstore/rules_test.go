package kvstore_test

// TestRules runs the scripts in testdata/rules/*.txt: the KV protocol's
// error rules (the package documentation's "Errors"), case by case, against
// the real plugin (kvplugin.KV, as kv.wasm runs it) on the SDK's MemState,
// which undoes a failed entry's writes as the host does.
//
// To regenerate the expected output after a deliberate change of a rule:
//
//	go test ./plugins/kv/kvstore -run TestRules -rewrite
//
// and read the diff: it is the change of the protocol that clients see.
//
// Directives (github.com/cockroachdb/datadriven):
//
//	apply     each input line is a command, one log entry, at consecutive
//	          indexes (the first entry of a file is index 1; the index is the
//	          version of the keys the entry writes); the output has one line
//	          per entry: "<index>: ok <answer>" or "<index>: <code>: <message>".
//	query     each input line is a query; one output line per query.
//	state     the whole state, one "key = value @version" line per key.
//
// Requests are written in a notation of MsgPack values (see parseValues):
// "s" is a str, b"s" a bin, "s"*N (or b"s"*N) s repeated N times, 7 and -1
// integers, 1.5 a float64, true, false, nil, [a, b] an array, {k: v} a map
// in that order (repeats kept), and x"81a2" raw bytes given in hex. A line
// of several values is their encodings one after the other. Answers are
// printed in the same notation.
//
// Each line is also checked silently against what the protocol promises
// elsewhere: the independent model (internal/kvmodel) gives the same result
// bytes and the same state, and the client codec's ParseCommand and
// ParseQuery refuse exactly what the plugin refuses while decoding, with the
// same error.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/internal/fsmtest"
	"github.com/raftkv/raftkv/internal/kvmodel"
	"github.com/raftkv/raftkv/internal/mptext"
	"github.com/raftkv/raftkv/plugins/kv/kvplugin"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

func TestRules(t *testing.T) {
	datadriven.Walk(t, "testdata/rules", func(t *testing.T, path string) {
		var (
			real  = fsmtest.NewMemTarget(kvplugin.KV{})
			model = kvmodel.New()
			index = uint64(1)
		)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			var out strings.Builder
			switch td.Cmd {
			case "apply":
				for _, line := range lines(td.Input) {
					data := encode(t, td, line)
					e := []abi.Entry{{Index: index, Term: 1, Data: data}}
					r, m := real.Apply(e)[0], model.Apply(e)[0]
					if !sameResult(r, m) {
						t.Errorf("%s: %s: the plugin answers %s, the model %s%s", td.Pos, line, show(r), show(m), changeModel)
					}
					_, err := kvstore.ParseCommand(data)
					checkDecoder(t, td, line, r, err)
					fmt.Fprintf(&out, "%d: %s\n", index, show(r))
					index++
				}
				if d, md := dump(real.Dump()), dump(model.Dump()); d != md {
					t.Errorf("%s: after the entries, the plugin's state is\n%sand the model's\n%s%s", td.Pos, d, md, changeModel)
				}
			case "query":
				for _, line := range lines(td.Input) {
					data := encode(t, td, line)
					r, m := real.Query(data), model.Query(data)
					if !sameResult(r, m) {
						t.Errorf("%s: %s: the plugin answers %s, the model %s%s", td.Pos, line, show(r), show(m), changeModel)
					}
					_, err := kvstore.ParseQuery(data)
					checkDecoder(t, td, line, r, err)
					out.WriteString(show(r) + "\n")
				}
			case "state":
				out.WriteString(dump(real.Dump()))
				if out.Len() == 0 {
					out.WriteString("(empty)\n")
				}
			default:
				td.Fatalf(t, "unknown directive %q", td.Cmd)
			}
			return out.String()
		})
	})
}

// changeModel ends a report of a difference from the model.
const changeModel = "\n(a deliberate change of a rule changes internal/kvmodel too)"

// lines returns the non-empty lines of input.
func lines(input string) []string {
	var out []string
	for _, l := range strings.Split(input, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func encode(t *testing.T, td *datadriven.TestData, line string) []byte {
	b, err := parseValues(line)
	if err != nil {
		td.Fatalf(t, "%s: %v", line, err)
	}
	return b
}

func sameResult(a, b abi.Result) bool { return a.Code == b.Code && bytes.Equal(a.Data, b.Data) }

// checkDecoder checks a client-side decoder's verdict (err, from ParseCommand
// or ParseQuery) against the plugin's result r: the decoder refuses exactly
// the requests the plugin refuses as malformed (bad_request, too_large),
// with the same error; a request it accepts fails, if at all, only on the
// state (not_found, conflict).
func checkDecoder(t *testing.T, td *datadriven.TestData, line string, r abi.Result, err error) {
	t.Helper()
	var ae *abi.Error
	switch {
	case err == nil && (r.Code == abi.CodeBadRequest || r.Code == abi.CodeTooLarge):
		t.Errorf("%s: %s: the client codec accepts what the plugin refuses (%s)", td.Pos, line, show(r))
	case err != nil && !errors.As(err, &ae):
		t.Errorf("%s: %s: the client codec fails with %v, not an *abi.Error", td.Pos, line, err)
	case err != nil && (ae.Code != r.Code || ae.Message != string(r.Data)):
		t.Errorf("%s: %s: the client codec refuses with %v: %s; the plugin answers %s", td.Pos, line, ae.Code, ae.Message, show(r))
	}
}

// show renders a result: "ok <answer>" or "<code>: <message>".
func show(r abi.Result) string {
	if r.Code != abi.CodeOK {
		return r.Code.String() + ": " + string(r.Data)
	}
	s, err := mptext.Format(r.Data)
	if err != nil {
		return fmt.Sprintf("ok, but the answer % x is not one MsgPack value: %v", r.Data, err)
	}
	return "ok " + s
}

func dump(recs []abi.Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%s = %s @%d\n", mptext.Quote(r.Key), mptext.Quote(r.Value), r.Version)
	}
	return b.String()
}

// parseValues encodes a line of the notation (see TestRules).
func parseValues(s string) ([]byte, error) {
	p := &parser{s: s}
	var out []byte
	for p.skipSpace(); p.pos < len(p.s); p.skipSpace() {
		var err error
		if out, err = p.value(out); err != nil {
			return nil, fmt.Errorf("at column %d: %w", p.pos+1, err)
		}
	}
	return out, nil
}

type parser struct {
	s   string
	pos int
}

func (p *parser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *parser) eat(c byte) bool {
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *parser) value(dst []byte) ([]byte, error) {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return nil, errors.New("value expected")
	}
	rest := p.s[p.pos:]
	switch {
	case rest[0] == '{' || rest[0] == '[':
		closing, isMap := byte(']'), rest[0] == '{'
		if isMap {
			closing = '}'
		}
		p.pos++
		var elems []byte
		n := 0
		for !p.eat(closing) {
			if n > 0 && !p.eat(',') {
				return nil, fmt.Errorf("',' or '%c' expected", closing)
			}
			var err error
			if elems, err = p.value(elems); err != nil {
				return nil, err
			}
			if isMap {
				if !p.eat(':') {
					return nil, errors.New("':' expected")
				}
				if elems, err = p.value(elems); err != nil {
					return nil, err
				}
			}
			n++
		}
		if isMap {
			return append(mp.AppendMapHeader(dst, n), elems...), nil
		}
		return append(mp.AppendArrayHeader(dst, n), elems...), nil
	case rest[0] == '"' || strings.HasPrefix(rest, `b"`) || strings.HasPrefix(rest, `x"`):
		kind := byte('s')
		if rest[0] != '"' {
			kind = rest[0]
			p.pos++
		}
		q, err := strconv.QuotedPrefix(p.s[p.pos:])
		if err != nil {
			return nil, err
		}
		p.pos += len(q)
		str, _ := strconv.Unquote(q)
		if kind == 'x' {
			raw, err := hex.DecodeString(str)
			if err != nil {
				return nil, err
			}
			return append(dst, raw...), nil
		}
		if p.eat('*') {
			n, err := p.integer()
			if err != nil {
				return nil, err
			}
			str = strings.Repeat(str, int(n))
		}
		if kind == 'b' {
			return mp.AppendBytes(dst, []byte(str)), nil
		}
		return mp.AppendString(dst, str), nil
	case strings.HasPrefix(rest, "true"):
		p.pos += 4
		return mp.AppendBool(dst, true), nil
	case strings.HasPrefix(rest, "false"):
		p.pos += 5
		return mp.AppendBool(dst, false), nil
	case strings.HasPrefix(rest, "nil"):
		p.pos += 3
		return mp.AppendNil(dst), nil
	}
	end := p.pos
	for end < len(p.s) && strings.IndexByte("+-.0123456789eE", p.s[end]) >= 0 {
		end++
	}
	num := p.s[p.pos:end]
	if num == "" {
		return nil, fmt.Errorf("unexpected %q", rest[:1])
	}
	p.pos = end
	if u, err := strconv.ParseUint(num, 10, 64); err == nil {
		return mp.AppendUint(dst, u), nil
	}
	if i, err := strconv.ParseInt(num, 10, 64); err == nil {
		return mp.AppendInt(dst, i), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return nil, fmt.Errorf("bad number %q", num)
	}
	return mp.AppendFloat64(dst, f), nil
}

func (p *parser) integer() (uint64, error) {
	p.skipSpace()
	end := p.pos
	for end < len(p.s) && p.s[end] >= '0' && p.s[end] <= '9' {
		end++
	}
	n, err := strconv.ParseUint(p.s[p.pos:end], 10, 31)
	p.pos = end
	return n, err
}

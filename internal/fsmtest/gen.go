package fsmtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
)

// Step is one operation of a generated sequence: a command (the data of a log
// entry) or, if Query is set, a query.
type Step struct {
	Query bool
	Data  []byte
}

// Steps returns a seeded random sequence of n KV protocol operations:
// commands (SET, DELETE, CAS hits and misses, create-only CAS, good and bad
// TXNs, GET as a command, and malformed ones: bad MsgPack, unknown ops, empty
// or oversized keys and values, wrong types) interleaved with GET and LIST
// queries (prefixes, ranges, limits). The same seed gives the same sequence.
//
// The generator keeps a rough model of versions to aim CAS and conditional
// DELETE at hits; it assumes that the i-th command of the sequence (counting
// from 1) is applied at log index i, as Compare does.
func Steps(seed int64, n int) []Step { return generate(seed, n, true) }

// Ops returns the commands of a sequence like Steps' but without queries, as
// entry data: a realistic command mix for benchmarks. The i-th command is
// meant to run at log index i+1.
func Ops(seed int64, n int) [][]byte {
	steps := generate(seed, n, false)
	out := make([][]byte, len(steps))
	for i, s := range steps {
		out[i] = s.Data
	}
	return out
}

type generator struct {
	r       *rand.Rand
	run     int               // commands left before the next burst of queries
	index   uint64            // log index of the next command
	shadow  map[string]uint64 // key → version, as far as the generator knows
	keys    []string          // the key space
	queries bool
}

func generate(seed int64, n int, queries bool) []Step {
	g := &generator{
		r:       rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		index:   1,
		shadow:  map[string]uint64{},
		queries: queries,
	}
	g.keys = keySpace(g.r)
	steps := make([]Step, 0, n)
	for len(steps) < n {
		steps = append(steps, g.step())
	}
	return steps
}

// keySpace returns keys under a few shared prefixes, including bytes 0x00 and
// 0xff so that prefix ends and byte order matter.
func keySpace(r *rand.Rand) []string {
	var keys []string
	for _, p := range []string{"a/", "b/", "user/", "user/1", "\xff", "\xff\xff", "\xfe\xff", "z", "\x00"} {
		for i := 0; i < 12; i++ {
			keys = append(keys, p+strconv.Itoa(i))
		}
	}
	for i := 0; i < 8; i++ {
		k := make([]byte, 1+r.IntN(6))
		for j := range k {
			k[j] = byte(r.IntN(256))
		}
		keys = append(keys, string(k))
	}
	return keys
}

// prefixes are LIST prefixes: present, absent, and all-0xff ones (no upper
// bound).
var prefixes = []string{"", "a/", "b/", "user/", "user/1", "\xff", "\xff\xff", "\xfe", "\xfe\xff", "z", "zz", "nothing/", "\x00", "a"}

func (g *generator) pick(n int) bool { return g.r.IntN(100) < n }

func (g *generator) key() []byte {
	if g.pick(3) {
		return []byte("big/" + strconv.Itoa(g.r.IntN(8)))
	}
	return []byte(g.keys[g.r.IntN(len(g.keys))])
}

// existingKey returns a key the generator believes exists, if any.
func (g *generator) existingKey() ([]byte, bool) {
	if len(g.shadow) == 0 {
		return g.key(), false
	}
	keys := make([]string, 0, len(g.shadow))
	for k := range g.shadow {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return []byte(keys[g.r.IntN(len(keys))]), true
}

func (g *generator) value(key []byte) []byte {
	n := g.r.IntN(40)
	switch {
	case bytes.HasPrefix(key, []byte("big/")):
		n = 600<<10 + g.r.IntN(abi.MaxValueSize-600<<10+1)
	case g.pick(3):
		n = 200 + g.r.IntN(70000)
	case g.pick(5):
		n = 0
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte('a' + (i+n)%26)
	}
	if n > 0 {
		v[0] = byte(g.r.IntN(256))
	}
	return v
}

// step returns the next operation. Commands come in runs of random length
// (up to a few batches' worth) and queries in bursts between them, so that
// both small and large batches form.
func (g *generator) step() Step {
	if g.queries && g.run == 0 {
		if g.pick(88) {
			return Step{Query: true, Data: g.query()}
		}
		g.run = 1 + g.r.IntN(50)
		if g.pick(6) {
			g.run = 1 + g.r.IntN(1200)
		}
	}
	g.run--
	data := g.command()
	g.index++
	return Step{Data: data}
}

// field is one map entry of an encoded request.
type field struct {
	name string
	enc  func(*msgpack.Encoder) error
}

// encoding helpers, varied so that every MsgPack form the protocol accepts
// shows up.
func (g *generator) bytesVal(b []byte) func(*msgpack.Encoder) error {
	if g.pick(50) {
		return func(e *msgpack.Encoder) error { return e.EncodeString(string(b)) }
	}
	return func(e *msgpack.Encoder) error { return e.EncodeBytes(b) }
}

func (g *generator) uintVal(v uint64) func(*msgpack.Encoder) error {
	switch g.r.IntN(3) {
	case 0:
		return func(e *msgpack.Encoder) error { return e.EncodeUint(v) }
	case 1:
		return func(e *msgpack.Encoder) error { return e.EncodeUint64(v) }
	}
	return func(e *msgpack.Encoder) error { return e.EncodeInt64(int64(v)) }
}

func anyVal(v any) func(*msgpack.Encoder) error {
	return func(e *msgpack.Encoder) error { return e.Encode(v) }
}

func (g *generator) opName(op string) func(*msgpack.Encoder) error {
	switch g.r.IntN(6) {
	case 0:
		op = string(bytes.ToLower([]byte(op)))
	case 1:
		b := []byte(op)
		b[0] = bytes.ToLower(b[:1])[0]
		op = string(b)
	}
	return g.bytesVal([]byte(op))
}

// encode writes fields as a map, sometimes shuffled and with an unknown
// field.
func (g *generator) encode(fields ...field) []byte {
	if g.pick(20) {
		fields = append(fields, field{"comment", anyVal("ignored")})
	}
	if g.pick(30) {
		g.r.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	must(enc.EncodeMapLen(len(fields)))
	for _, f := range fields {
		must(enc.EncodeString(f.name))
		must(f.enc(enc))
	}
	return buf.Bytes()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func (g *generator) command() []byte {
	switch x := g.r.IntN(100); {
	case x < 32:
		return g.set()
	case x < 42:
		return g.del()
	case x < 58:
		return g.cas()
	case x < 70:
		return g.txn()
	case x < 76:
		return g.encode(field{"op", g.opName("GET")}, field{"key", g.bytesVal(g.key())})
	default:
		return g.malformed()
	}
}

func (g *generator) set() []byte {
	k := g.key()
	fields := []field{{"op", g.opName("SET")}, {"key", g.bytesVal(k)}, {"value", g.bytesVal(g.value(k))}}
	if g.pick(5) {
		fields = append(fields, field{"version", g.uintVal(3)}) // ignored by SET
	}
	g.shadow[string(k)] = g.index
	return g.encode(fields...)
}

func (g *generator) del() []byte {
	k, _ := g.existingKey()
	if g.pick(30) {
		k = g.key()
	}
	fields := []field{{"op", g.opName("DELETE")}, {"key", g.bytesVal(k)}}
	if g.pick(30) {
		fields = append(fields, field{"value", anyVal("")}) // as the seed's clients send
	}
	if g.pick(40) {
		v, hit := g.versionFor(k)
		fields = append(fields, field{"version", g.uintVal(v)})
		if hit {
			delete(g.shadow, string(k))
		}
		return g.encode(fields...)
	}
	delete(g.shadow, string(k))
	return g.encode(fields...)
}

// versionFor returns an expected version for k: usually the one the
// generator believes is right (hit), sometimes 0 or a wrong one.
func (g *generator) versionFor(k []byte) (uint64, bool) {
	cur, exists := g.shadow[string(k)]
	switch x := g.r.IntN(10); {
	case x < 6:
		return cur, true // 0 when absent: a create-only CAS
	case x < 8:
		return 0, !exists
	default:
		return cur + 1 + uint64(g.r.IntN(5)), false
	}
}

func (g *generator) cas() []byte {
	k, _ := g.existingKey()
	if g.pick(30) {
		k = g.key()
	}
	v, hit := g.versionFor(k)
	data := g.encode(field{"op", g.opName("CAS")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal(g.value(k))}, field{"version", g.uintVal(v)})
	if hit {
		g.shadow[string(k)] = g.index
	}
	return data
}

func (g *generator) txn() []byte {
	n := g.r.IntN(7)
	good := g.pick(65)
	bad := -1
	if !good && n > 0 {
		bad = g.r.IntN(n)
	}
	shadow := maps(g.shadow)
	ops := make([]func(*msgpack.Encoder) error, n)
	for i := range ops {
		var raw []byte
		if i == bad {
			raw = g.badTxnOp()
		} else {
			raw = g.txnOp(shadow)
		}
		ops[i] = anyVal(msgpack.RawMessage(raw))
	}
	if good {
		g.shadow = shadow
	}
	arr := func(e *msgpack.Encoder) error {
		if err := e.EncodeArrayLen(len(ops)); err != nil {
			return err
		}
		for _, op := range ops {
			if err := op(e); err != nil {
				return err
			}
		}
		return nil
	}
	return g.encode(field{"op", g.opName("TXN")}, field{"ops", arr})
}

func maps(m map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// txnOp returns a TXN operation meant to succeed, updating shadow.
func (g *generator) txnOp(shadow map[string]uint64) []byte {
	k := g.key()
	switch g.r.IntN(3) {
	case 0:
		shadow[string(k)] = g.index
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal(g.value(k))})
	case 1:
		delete(shadow, string(k))
		return g.encode(field{"op", g.opName("DELETE")}, field{"key", g.bytesVal(k)})
	}
	v := shadow[string(k)]
	shadow[string(k)] = g.index
	return g.encode(field{"op", g.opName("CAS")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal(g.value(k))}, field{"version", g.uintVal(v)})
}

// badTxnOp returns a TXN operation that fails: a conflict or a bad request.
func (g *generator) badTxnOp() []byte {
	k := g.key()
	switch g.r.IntN(7) {
	case 0:
		return g.encode(field{"op", g.opName("CAS")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal([]byte("x"))}, field{"version", g.uintVal(1 << 40)})
	case 1:
		return g.encode(field{"op", g.opName("GET")}, field{"key", g.bytesVal(k)})
	case 2:
		return g.encode(field{"op", g.opName("TXN")}, field{"ops", anyVal([]any{})})
	case 3:
		return mustMarshal([]any{"SET", "k", "v"})
	case 4:
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(nil)}, field{"value", g.bytesVal([]byte("v"))})
	case 5:
		return g.encode(field{"op", g.opName("DELETE")}, field{"key", g.bytesVal(k)}, field{"version", anyVal(-1)})
	}
	return g.encode(field{"op", anyVal("FROB")}, field{"key", g.bytesVal(k)})
}

func mustMarshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	must(err)
	return b
}

// malformed returns a command that must be refused without a state change.
func (g *generator) malformed() []byte {
	k := g.key()
	valid := g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal([]byte("v"))})
	switch g.r.IntN(24) {
	case 0:
		b := make([]byte, g.r.IntN(40))
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		return b
	case 1:
		return valid[:g.r.IntN(len(valid))]
	case 2:
		return append(valid, 0xc0)
	case 3:
		return mustMarshal([]any{"SET", string(k), "v"})
	case 4:
		return mustMarshal("SET")
	case 5:
		return mustMarshal(map[int]string{1: "SET"})
	case 6:
		return g.encode(field{"key", g.bytesVal(k)}, field{"value", g.bytesVal([]byte("v"))})
	case 7:
		return g.encode(field{"op", anyVal(7)}, field{"key", g.bytesVal(k)})
	case 8:
		names := []string{"FROB", "SETT", "ſet", "LIST", "list", string(bytes.Repeat([]byte("X\x00"), 50))}
		return g.encode(field{"op", anyVal(names[g.r.IntN(len(names))])}, field{"key", g.bytesVal(k)})
	case 9:
		return g.encode(field{"op", g.opName("SET")}, field{"value", g.bytesVal([]byte("v"))})
	case 10:
		return g.encode(field{"op", g.opName("DELETE")}, field{"key", anyVal(12)})
	case 11:
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(nil)}, field{"value", g.bytesVal([]byte("v"))})
	case 12:
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(bytes.Repeat([]byte("k"), abi.MaxKeySize+1))}, field{"value", g.bytesVal(nil)})
	case 13:
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)})
	case 14:
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)}, field{"value", anyVal(nil)})
	case 15:
		if g.pick(20) {
			return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal(make([]byte, abi.MaxValueSize+1))})
		}
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)}, field{"value", anyVal(3.5)})
	case 16:
		return g.encode(field{"op", g.opName("CAS")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal([]byte("v"))})
	case 17:
		vs := []any{-1, 2.5, "7", nil, []any{1}}
		return g.encode(field{"op", g.opName("CAS")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal([]byte("v"))}, field{"version", anyVal(vs[g.r.IntN(len(vs))])})
	case 18:
		return g.encode(field{"op", g.opName("TXN")})
	case 19:
		return g.encode(field{"op", g.opName("TXN")}, field{"ops", anyVal(map[string]any{"op": "SET"})})
	case 20:
		return nil
	case 21:
		var nested []byte
		for i := 0; i < 40; i++ {
			nested = append(nested, 0x91)
		}
		return append(nested, 0xc0)
	case 22:
		return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal([]byte("v"))}, field{"ext", anyVal(msgpack.RawMessage{0xd4, 0x01, 0x02})})
	}
	// A map header that promises one field more than follows.
	return append([]byte{valid[0] + 1}, valid[1:]...)
}

func (g *generator) query() []byte {
	if g.pick(40) {
		k, _ := g.existingKey()
		switch g.r.IntN(10) {
		case 0:
			k = []byte("missing/key")
		case 1:
			return g.encode(field{"op", g.opName("GET")}, field{"key", g.bytesVal(nil)})
		case 2:
			return g.encode(field{"op", g.opName("SET")}, field{"key", g.bytesVal(k)}, field{"value", g.bytesVal(nil)})
		case 3:
			return g.malformed()
		}
		return g.encode(field{"op", g.opName("GET")}, field{"key", g.bytesVal(k)})
	}
	fields := []field{{"op", g.opName("LIST")}}
	if g.pick(70) {
		p := prefixes[g.r.IntN(len(prefixes))]
		if g.pick(5) {
			p = "big/"
		}
		fields = append(fields, field{"prefix", g.bytesVal([]byte(p))})
	}
	if g.pick(35) {
		fields = append(fields, field{"start", g.bytesVal(g.key())})
	}
	if g.pick(35) {
		fields = append(fields, field{"end", g.bytesVal(g.key())})
	}
	if g.pick(70) {
		limits := []any{1, 2, 3, 5, 10, 50, 100, 10000, 0, 10001, -1, "x", uint64(1 << 63)}
		fields = append(fields, field{"limit", anyVal(limits[g.r.IntN(len(limits))])})
	}
	if g.pick(2) {
		fields = append(fields, field{"start", anyVal(5)})
	}
	if g.pick(1) {
		fields = append(fields, field{"prefix", g.bytesVal(bytes.Repeat([]byte("p"), abi.MaxKeySize+1))})
	}
	return g.encode(fields...)
}

// describe renders request bytes for a failure message.
func describe(b []byte) string {
	var v any
	if err := msgpack.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("%.200q (undecodable: %v)", b, err)
	}
	s := fmt.Sprintf("%v", v)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

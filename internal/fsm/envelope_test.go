package fsm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// legacyEnvelope is the msgpack library's encoding of an envelope, as
// entries written before the hand-written encoder have it.
func legacyEnvelope(t testing.TB, e Envelope) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.EncodeArrayLen(4)
	enc.EncodeUint8(uint8(e.Kind))
	enc.EncodeInt(e.Time)
	enc.EncodeString(e.Plugin)
	if err := enc.EncodeBytes(e.Payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []Envelope{
		{Kind: KindCommand, Time: 1733100000000000000, Plugin: "kv", Payload: []byte("cmd")},
		{Kind: KindDeploy, Time: -5, Plugin: "ledger", Payload: bytes.Repeat([]byte{7}, 70000)},
		{Kind: KindTrustAdd, Time: 0, Plugin: "", Payload: nil},
	} {
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for name, enc := range map[string][]byte{"new": data, "legacy": legacyEnvelope(t, e)} {
			got, err := decodeEnvelope(enc)
			if err != nil {
				t.Fatalf("%s encoding of %v: %v", name, e.Kind, err)
			}
			if got.Kind != e.Kind || got.Time != e.Time || got.Plugin != e.Plugin || !bytes.Equal(got.Payload, e.Payload) {
				t.Fatalf("%s encoding: decoded %+v, want %+v", name, got, e)
			}
		}
		// The msgpack library reads the new encoding as the old one.
		dec := msgpack.NewDecoder(bytes.NewReader(data))
		if n, err := dec.DecodeArrayLen(); err != nil || n != 4 {
			t.Fatalf("array header: %d, %v", n, err)
		}
		k, _ := dec.DecodeUint8()
		tm, _ := dec.DecodeInt64()
		p, _ := dec.DecodeString()
		pl, err := dec.DecodeBytes()
		if err != nil || Kind(k) != e.Kind || tm != e.Time || p != e.Plugin || !bytes.Equal(pl, e.Payload) {
			t.Fatalf("msgpack decodes %d %d %q %d bytes (%v), want %+v", k, tm, p, len(pl), err, e)
		}
	}
}

// TestEnvelopeKey: a command's idempotency key makes a fifth field, which
// round-trips; a key that is not 1 to 128 printable ASCII bytes is refused.
func TestEnvelopeKey(t *testing.T) {
	e := Envelope{Kind: KindCommand, Time: 9, Plugin: "kv", Payload: []byte("cmd"), Key: "0123456789abcdef0123456789abcdef"}
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != 0x95 {
		t.Fatalf("keyed envelope has array header %#x, want 5 fields", data[0])
	}
	got, err := decodeEnvelope(data)
	if err != nil || got.Key != e.Key || !bytes.Equal(got.Payload, e.Payload) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, e)
	}
	for _, key := range []string{"with space", "tab\t", strings.Repeat("k", 129), "é"} {
		bad := Envelope{Kind: KindCommand, Plugin: "kv", Payload: []byte("x"), Key: key}
		data, _ := bad.Encode()
		if _, err := decodeEnvelope(data); err == nil {
			t.Errorf("key %q: decoded", key)
		}
	}
}

func TestEnvelopeMalformed(t *testing.T) {
	good, _ := (&Envelope{Kind: KindCommand, Time: 3, Plugin: "kv", Payload: []byte("x")}).Encode()
	for name, data := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"3 fields":  {0x93, 1, 2, 0xa0},
		"kind 256":  {0x94, 0xcd, 1, 0, 1, 0xa0, 0xc4, 0},
		"not array": {0x81, 1, 2},
	} {
		if _, err := decodeEnvelope(data); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzEnvelope(f *testing.F) {
	good, _ := (&Envelope{Kind: KindCommand, Time: 3, Plugin: "kv", Payload: []byte("x")}).Encode()
	f.Add(good)
	f.Add(legacyEnvelope(f, Envelope{Kind: KindDeploy, Plugin: "p"}))
	keyed, _ := (&Envelope{Kind: KindCommand, Time: 3, Plugin: "kv", Payload: []byte("x"), Key: "k-1"}).Encode()
	f.Add(keyed)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEnvelope(data)
		if err != nil {
			return
		}
		again, _ := e.Encode()
		e2, err := decodeEnvelope(again)
		if err != nil || e2.Kind != e.Kind || e2.Time != e.Time || e2.Plugin != e.Plugin || !bytes.Equal(e2.Payload, e.Payload) || e2.Key != e.Key {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", e, e2, err)
		}
	})
}

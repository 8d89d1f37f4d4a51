package fsm

import (
	"fmt"

	"github.com/raftkv/raftkv/abi/mp"
)

// Kind says what a log entry carries.
type Kind uint8

const (
	KindCommand      Kind = 1 // Payload: a plugin command for Plugin
	KindDeploy       Kind = 2 // Payload: MsgPack deploySpec, or the .wasm alone (older entries)
	KindRemovePlugin Kind = 3 // Payload: MsgPack removePlugin
	KindTrustAdd     Kind = 4 // Payload: MsgPack trustChange
	KindTrustRemove  Kind = 5 // Payload: MsgPack trustChange
	KindSetLimits    Kind = 6 // Payload: MsgPack setLimitsSpec
	KindQuarantine   Kind = 7 // Payload: MsgPack quarantineSpec
)

// Envelope is every raftkv log entry: MsgPack [kind, time, plugin, payload]
// or, for a command with an idempotency key, [kind, time, plugin, payload,
// key] (see sessions.go; a node older than the key field refuses such an
// entry as undecodable, a result, not a crash). Time is the leader's clock
// when it proposed the entry (Unix ns).
type Envelope struct {
	Kind    Kind
	Time    int64
	Plugin  string
	Payload []byte
	Key     string // idempotency key of a command, or ""
}

// Encode encodes the entry. Encode and decodeEnvelope are written by hand,
// without reflection: Encode runs for every write on the leader,
// decodeEnvelope for every entry on every node.
func (e *Envelope) Encode() ([]byte, error) {
	b := make([]byte, 0, 1+1+9+mp.BinSize(len(e.Plugin))+mp.BinSize(len(e.Payload))+mp.BinSize(len(e.Key)))
	fields := 4
	if e.Key != "" {
		fields = 5
	}
	b = mp.AppendArrayHeader(b, fields)
	b = mp.AppendUint(b, uint64(e.Kind))
	b = mp.AppendInt(b, e.Time)
	b = mp.AppendString(b, e.Plugin)
	b = mp.AppendBytes(b, e.Payload)
	if e.Key != "" {
		b = mp.AppendString(b, e.Key)
	}
	return b, nil
}

// decodeEnvelope decodes an entry. Payload is a sub-slice of data (no copy):
// it is valid as long as the log entry is. Any MsgPack integer and string
// encoding is accepted, so entries written by other encoders decode too.
func decodeEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	r := mp.NewReader(data)
	n, err := r.ReadArrayHeader()
	if err == nil && n != 4 && n != 5 {
		err = fmt.Errorf("%d fields, want 4 or 5", n)
	}
	var k uint64
	if err == nil {
		if k, err = r.ReadUint64(); err == nil && k > 255 {
			err = fmt.Errorf("kind %d out of range", k)
		}
	}
	if err == nil {
		e.Time, err = r.ReadInt64()
	}
	var name []byte
	if err == nil {
		name, err = r.ReadBytes()
	}
	if err == nil {
		if r.Peek() == mp.TypeNil { // the msgpack library's encoding of an empty payload
			err = r.ReadNil()
		} else {
			e.Payload, err = r.ReadBytes()
		}
	}
	var key []byte
	if err == nil && n == 5 {
		if key, err = r.ReadBytes(); err == nil && ValidIdempotencyKey(string(key)) != nil {
			err = fmt.Errorf("invalid idempotency key")
		}
	}
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d bytes after the envelope", r.Len())
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("raftkv: undecodable log entry: %w", err)
	}
	e.Kind = Kind(k)
	if key != nil {
		e.Key = string(key)
	}
	if string(name) == DefaultPluginName { // no allocation for the common case
		e.Plugin = DefaultPluginName
	} else {
		e.Plugin = string(name)
	}
	return e, nil
}

// RemovePlugin is the payload of a remove-plugin entry.
type RemovePlugin struct {
	DropState bool `msgpack:"drop_state"`
}

// TrustChange is the payload of a trust entry (KindTrustAdd binds Key to
// NodeID; KindTrustRemove drops and revokes NodeID's keys), and an entry of
// a snapshot's trust list.
type TrustChange struct {
	NodeID string `msgpack:"id"`
	Key    string `msgpack:"key"` // authorized_keys form, "ssh-ed25519 AAAA…"
}

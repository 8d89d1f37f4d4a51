package host

import (
	"fmt"

	"github.com/raftkv/raftkv/plugins/sdk/mp"
)

// kind says what a log entry carries.
type kind uint8

const (
	kindCommand      kind = 1 // Payload: a plugin command for Plugin
	kindDeploy       kind = 2 // Payload: the .wasm of Plugin (new or new version)
	kindRemovePlugin kind = 3 // Payload: MsgPack removePlugin
	kindTrustAdd     kind = 4 // Payload: MsgPack trustChange
	kindTrustRemove  kind = 5 // Payload: MsgPack trustChange
)

// envelope is every raftkv log entry: MsgPack [kind, time, plugin, payload].
// Time is the leader's clock when it proposed the entry (Unix ns).
type envelope struct {
	Kind    kind
	Time    int64
	Plugin  string
	Payload []byte
}

// encode and decodeEnvelope are written by hand, without reflection: encode
// runs for every write on the leader, decodeEnvelope for every entry on
// every node.
func (e *envelope) encode() ([]byte, error) {
	b := make([]byte, 0, 1+1+9+mp.BinSize(len(e.Plugin))+mp.BinSize(len(e.Payload)))
	b = mp.AppendArrayHeader(b, 4)
	b = mp.AppendUint(b, uint64(e.Kind))
	b = mp.AppendInt(b, e.Time)
	b = mp.AppendString(b, e.Plugin)
	return mp.AppendBytes(b, e.Payload), nil
}

// decodeEnvelope decodes an entry. Payload is a sub-slice of data (no copy):
// it is valid as long as the log entry is. Any MsgPack integer and string
// encoding is accepted, so entries written by other encoders decode too.
func decodeEnvelope(data []byte) (envelope, error) {
	var e envelope
	r := mp.NewReader(data)
	n, err := r.ReadArrayHeader()
	if err == nil && n != 4 {
		err = fmt.Errorf("%d fields, want 4", n)
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
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d bytes after the envelope", r.Len())
	}
	if err != nil {
		return envelope{}, fmt.Errorf("raftkv: undecodable log entry: %w", err)
	}
	e.Kind = kind(k)
	if string(name) == DefaultPluginName { // no allocation for the common case
		e.Plugin = DefaultPluginName
	} else {
		e.Plugin = string(name)
	}
	return e, nil
}

type removePlugin struct {
	DropState bool `msgpack:"drop_state"`
}

type trustChange struct {
	NodeID string `msgpack:"id"`
	Key    string `msgpack:"key"` // authorized_keys form, "ssh-ed25519 AAAA…"
}

package host

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
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

var _ msgpack.CustomEncoder = (*envelope)(nil)
var _ msgpack.CustomDecoder = (*envelope)(nil)

func (e *envelope) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(4); err != nil {
		return err
	}
	if err := enc.EncodeUint8(uint8(e.Kind)); err != nil {
		return err
	}
	if err := enc.EncodeInt(e.Time); err != nil {
		return err
	}
	if err := enc.EncodeString(e.Plugin); err != nil {
		return err
	}
	return enc.EncodeBytes(e.Payload)
}

func (e *envelope) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 4 {
		return fmt.Errorf("envelope has %d fields, want 4", n)
	}
	k, err := dec.DecodeUint8()
	if err != nil {
		return err
	}
	e.Kind = kind(k)
	if e.Time, err = dec.DecodeInt64(); err != nil {
		return err
	}
	if e.Plugin, err = dec.DecodeString(); err != nil {
		return err
	}
	e.Payload, err = dec.DecodeBytes()
	return err
}

func (e *envelope) encode() ([]byte, error) { return msgpack.Marshal(e) }

func decodeEnvelope(data []byte) (envelope, error) {
	var e envelope
	if err := abi.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("raftkv: undecodable log entry: %w", err)
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

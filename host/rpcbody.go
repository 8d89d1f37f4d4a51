package host

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/fsm"
)

// The bodies of the forwarding RPC. host/peerrpc names the methods and says
// who may call each; here every method has its own request type, and the
// body a node receives is decoded into the type its method names, by a
// decoder that refuses what that type cannot hold: a body that is not one
// MsgPack map, a key the type does not have, a value of the wrong type,
// bytes after the map, and values the method cannot take (an empty node
// ID, an unknown consistency, an empty batch). Such a request is answered
// ErrInvalid, naming the method and the fault, and nothing runs.
//
// Every answer is an rpcResponse: an error (its peerrpc.Code and message),
// or a result whose Data is the method's response (a JoinResponse, a
// PluginInfo, a NodeStatus, the replicated trust lines, an applyResponse;
// a query's Code and Data are the plugin's answer).
//
// The forwarded write and read (apply, query) are encoded by hand (see
// RATIONALE.md, "Hand-written codecs on the hot paths"); the administrative
// methods go through msgpack/v5's reflection codec, after abi.Validate.
//
// The formats are not those of raftkv before typed bodies (one request
// struct shared by every method): a cluster is upgraded whole, not node by
// node, across that change.

// rpcBody is the request of one method.
type rpcBody interface {
	method() peerrpc.Method
	marshal() ([]byte, error)
	// unmarshal decodes and validates a body (see above).
	unmarshal(body []byte) error
	// subject is the node the request is about, for peerrpc's Self rule
	// ("" if none).
	subject() string
	// token is the cluster token the request carries ("" if none).
	token() string
}

// adminBody is an administrative request: the forwarding node adds its
// cluster token.
type adminBody interface {
	rpcBody
	setToken(string)
}

// rpcBodies makes an empty request of each method.
var rpcBodies = map[string]func() rpcBody{
	peerrpc.Ping.Name:         func() rpcBody { return new(pingRequest) },
	peerrpc.Status.Name:       func() rpcBody { return new(statusRequest) },
	peerrpc.Apply.Name:        func() rpcBody { return new(applyRequest) },
	peerrpc.Query.Name:        func() rpcBody { return new(queryRequest) },
	peerrpc.PluginList.Name:   func() rpcBody { return new(pluginListRPC) },
	peerrpc.Join.Name:         func() rpcBody { return new(joinRPC) },
	peerrpc.Remove.Name:       func() rpcBody { return new(removeRPC) },
	peerrpc.Trust.Name:        func() rpcBody { return new(trustRPC) },
	peerrpc.Deploy.Name:       func() rpcBody { return new(deployRPC) },
	peerrpc.RemovePlugin.Name: func() rpcBody { return new(removePluginRPC) },
	peerrpc.SetLimits.Name:    func() rpcBody { return new(setLimitsRPC) },
	peerrpc.Quarantine.Name:   func() rpcBody { return new(quarantineRPC) },
	peerrpc.Addresses.Name:    func() rpcBody { return new(addressesRPC) },
	peerrpc.Digest.Name:       func() rpcBody { return new(digestRPC) }, // digestcheck.go
	peerrpc.Voters.Name:       func() rpcBody { return new(votersRPC) }, // vouch.go
}

// decodeRPC decodes body as a request of method.
func decodeRPC(method string, body []byte) (rpcBody, error) {
	mk, ok := rpcBodies[method]
	if !ok {
		return nil, fmt.Errorf("%w: unknown method %q", ErrInvalid, method)
	}
	req := mk()
	if err := req.unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: %s request: %w", ErrInvalid, method, err)
	}
	return req, nil
}

// maxForwardBatch bounds the commands of one forwarded apply.
const maxForwardBatch = 1024

// Member methods: no token.

type memberBody struct{}

func (memberBody) subject() string { return "" }
func (memberBody) token() string   { return "" }

// pingRequest asks whether the node answers; it has no fields.
type pingRequest struct{ memberBody }

func (*pingRequest) method() peerrpc.Method { return peerrpc.Ping }
func (r *pingRequest) marshal() ([]byte, error) {
	return mp.AppendMapHeader(nil, 0), nil
}
func (r *pingRequest) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *pingRequest) validate() error          { return nil }

// statusRequest asks for the node's NodeStatus.
type statusRequest struct {
	memberBody `msgpack:"-"`
	Digests    bool `msgpack:"digests,omitempty"`
}

func (*statusRequest) method() peerrpc.Method     { return peerrpc.Status }
func (r *statusRequest) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *statusRequest) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *statusRequest) validate() error          { return nil }

// forwardedCommand is one forwarded write.
type forwardedCommand struct {
	Plugin string `msgpack:"plugin"`
	Key    string `msgpack:"key"` // the idempotency key ("" for none)
	Data   []byte `msgpack:"data"`
}

// applyRequest is a batch of forwarded writes, proposed together; each has
// its own result (an applyResponse).
type applyRequest struct {
	memberBody `msgpack:"-"`
	Commands   []forwardedCommand `msgpack:"commands"`
}

func (*applyRequest) method() peerrpc.Method { return peerrpc.Apply }

// queryRequest is a forwarded read.
type queryRequest struct {
	memberBody `msgpack:"-"`
	Plugin     string      `msgpack:"plugin"`
	Data       []byte      `msgpack:"data"`
	Level      Consistency `msgpack:"level"`
}

func (*queryRequest) method() peerrpc.Method { return peerrpc.Query }

// pluginListRPC is a forwarded read of the plugin table (answer: a
// pluginList).
type pluginListRPC struct {
	memberBody `msgpack:"-"`
	Level      Consistency `msgpack:"level"`
}

func (*pluginListRPC) method() peerrpc.Method     { return peerrpc.PluginList }
func (r *pluginListRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *pluginListRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *pluginListRPC) validate() error {
	if r.Level > Linearizable {
		return fmt.Errorf("unknown consistency %d", r.Level)
	}
	return nil
}

// pluginList is the answer of a pluginListRPC.
type pluginList struct {
	Plugins    []PluginInfo `msgpack:"plugins"`
	KeptStates []KeptState  `msgpack:"kept_states"`
}

// Administrative methods: the token, if any, is inside the request.

type adminToken struct {
	Token string `msgpack:"token,omitempty"`
}

func (a *adminToken) token() string     { return a.Token }
func (a *adminToken) setToken(t string) { a.Token = t }
func (a *adminToken) subject() string   { return "" }

// joinRPC asks the leader to add a node (answer: a JoinResponse).
type joinRPC struct {
	adminToken
	Join JoinRequest `msgpack:"join"`
}

func (*joinRPC) method() peerrpc.Method     { return peerrpc.Join }
func (r *joinRPC) subject() string          { return r.Join.NodeID }
func (r *joinRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *joinRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *joinRPC) validate() error {
	if r.Join.NodeID == "" || r.Join.Address == "" {
		return errors.New("join without a node ID or an address")
	}
	return nil
}

// removeRPC asks the leader to remove a member.
type removeRPC struct {
	adminToken
	NodeID string `msgpack:"id"`
}

func (*removeRPC) method() peerrpc.Method     { return peerrpc.Remove }
func (r *removeRPC) subject() string          { return r.NodeID }
func (r *removeRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *removeRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *removeRPC) validate() error          { return trust.ValidateNodeID(r.NodeID) }

// trustRPC asks the leader to trust a key (answer: the replicated trust
// lines).
type trustRPC struct {
	adminToken
	NodeID string `msgpack:"id,omitempty"` // "" when the line names it
	Line   string `msgpack:"key"`
}

func (*trustRPC) method() peerrpc.Method     { return peerrpc.Trust }
func (r *trustRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *trustRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *trustRPC) validate() error {
	if r.Line == "" {
		return errors.New("trust without a key")
	}
	return nil
}

// deployRPC asks the leader to deploy a module (answer: a PluginInfo).
type deployRPC struct {
	adminToken
	Plugin  string        `msgpack:"plugin"`
	Wasm    []byte        `msgpack:"wasm"`
	Options DeployOptions `msgpack:"options"`
}

func (*deployRPC) method() peerrpc.Method     { return peerrpc.Deploy }
func (r *deployRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *deployRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *deployRPC) validate() error          { return ValidPluginName(r.Plugin) }

// removePluginRPC asks the leader to remove a plugin.
type removePluginRPC struct {
	adminToken
	Plugin    string `msgpack:"plugin"`
	DropState bool   `msgpack:"drop,omitempty"`
}

func (*removePluginRPC) method() peerrpc.Method     { return peerrpc.RemovePlugin }
func (r *removePluginRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *removePluginRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *removePluginRPC) validate() error          { return ValidPluginName(r.Plugin) }

// setLimitsRPC asks the leader to change a plugin's limits (answer: a
// PluginInfo).
type setLimitsRPC struct {
	adminToken
	Plugin string      `msgpack:"plugin"`
	Patch  LimitsPatch `msgpack:"patch"`
	IfHash string      `msgpack:"if_hash,omitempty"`
}

func (*setLimitsRPC) method() peerrpc.Method     { return peerrpc.SetLimits }
func (r *setLimitsRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *setLimitsRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *setLimitsRPC) validate() error          { return ValidPluginName(r.Plugin) }

// quarantineRPC asks the leader to quarantine a plugin.
type quarantineRPC struct {
	adminToken
	Plugin string `msgpack:"plugin"`
	Reason string `msgpack:"reason,omitempty"`
}

func (*quarantineRPC) method() peerrpc.Method     { return peerrpc.Quarantine }
func (r *quarantineRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *quarantineRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *quarantineRPC) validate() error          { return ValidPluginName(r.Plugin) }

// addressesRPC publishes a member's addresses.
type addressesRPC struct {
	adminToken
	Addresses fsm.MemberAddresses `msgpack:"addresses"`
}

func (*addressesRPC) method() peerrpc.Method     { return peerrpc.Addresses }
func (r *addressesRPC) subject() string          { return r.Addresses.NodeID }
func (r *addressesRPC) marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *addressesRPC) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *addressesRPC) validate() error          { return r.Addresses.Validate() }

// decodeStrict decodes body, one MsgPack map, into v with the reflection
// codec, refusing keys v does not have and bytes after the map, then
// validates v.
func decodeStrict(body []byte, v interface{ validate() error }) error {
	if len(body) == 0 || !(body[0]>>4 == 0x8 || body[0] == 0xde || body[0] == 0xdf) {
		return fmt.Errorf("%w: the body is not a MsgPack map", abi.ErrMalformed)
	}
	if err := abi.Validate(body); err != nil {
		return err
	}
	rd := bytes.NewReader(body)
	dec := msgpack.NewDecoder(rd)
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", abi.ErrMalformed, err)
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the map", abi.ErrMalformed, rd.Len())
	}
	return v.validate()
}

// The hot path's bodies, by hand. Decoded byte fields alias the body (a
// fresh buffer per message).

// marshal encodes r: {"commands": [{"plugin", "key", "data"}...]}.
func (r *applyRequest) marshal() ([]byte, error) {
	size := 1 + 9 + 5
	for _, c := range r.Commands {
		size += 1 + 7 + 5 + len(c.Plugin) + 4 + 5 + len(c.Key) + 5 + mp.BinSize(len(c.Data))
	}
	b := mp.AppendMapHeader(make([]byte, 0, size), 1)
	b = mp.AppendArrayHeader(mp.AppendString(b, "commands"), len(r.Commands))
	for _, c := range r.Commands {
		b = mp.AppendMapHeader(b, 3)
		b = mp.AppendString(mp.AppendString(b, "plugin"), c.Plugin)
		b = mp.AppendString(mp.AppendString(b, "key"), c.Key)
		b = mp.AppendBytes(mp.AppendString(b, "data"), c.Data)
	}
	return b, nil
}

// unmarshal decodes and validates an apply request.
func (r *applyRequest) unmarshal(body []byte) error {
	seen := false
	err := decodeMap(mp.NewReader(body), true, func(rd *mp.Reader, key []byte) error {
		if string(key) != "commands" {
			return errUnknownField
		}
		seen = true
		n, err := rd.ReadArrayHeader()
		if err != nil {
			return err
		}
		if n == 0 || n > maxForwardBatch {
			return fmt.Errorf("%d commands (want 1 to %d)", n, maxForwardBatch)
		}
		r.Commands = make([]forwardedCommand, n)
		for i := range r.Commands {
			c := &r.Commands[i]
			hasPlugin := false
			err := decodeMap(rd, false, func(rd *mp.Reader, key []byte) error {
				var err error
				switch string(key) {
				case "plugin":
					c.Plugin, err = readString(rd)
					hasPlugin = true
				case "key":
					c.Key, err = readString(rd)
				case "data":
					c.Data, err = readBin(rd)
				default:
					err = errUnknownField
				}
				return err
			})
			if err == nil && !hasPlugin {
				err = errors.New("no plugin")
			}
			if err != nil {
				return fmt.Errorf("command %d: %w", i, err)
			}
		}
		return nil
	})
	if err == nil && !seen {
		err = fmt.Errorf("%w: no commands", abi.ErrMalformed)
	}
	return err
}

// marshal encodes r: {"plugin", "data", "level"}.
func (r *queryRequest) marshal() ([]byte, error) {
	b := mp.AppendMapHeader(make([]byte, 0, 1+7+5+len(r.Plugin)+5+mp.BinSize(len(r.Data))+6+1), 3)
	b = mp.AppendString(mp.AppendString(b, "plugin"), r.Plugin)
	b = mp.AppendBytes(mp.AppendString(b, "data"), r.Data)
	b = mp.AppendUint(mp.AppendString(b, "level"), uint64(r.Level))
	return b, nil
}

// unmarshal decodes and validates a query request.
func (r *queryRequest) unmarshal(body []byte) error {
	hasPlugin := false
	err := decodeMap(mp.NewReader(body), true, func(rd *mp.Reader, key []byte) error {
		var err error
		switch string(key) {
		case "plugin":
			r.Plugin, err = readString(rd)
			hasPlugin = true
		case "data":
			r.Data, err = readBin(rd)
		case "level":
			var v uint64
			if v, err = readUint(rd); err == nil && v > uint64(Linearizable) {
				err = fmt.Errorf("unknown consistency %d", v)
			}
			r.Level = Consistency(v)
		default:
			err = errUnknownField
		}
		return err
	})
	if err == nil && !hasPlugin {
		err = fmt.Errorf("%w: no plugin", abi.ErrMalformed)
	}
	return err
}

// applyResponse is an apply's answer: one result per command, in order,
// each an rpcResponse (its own code, data and error).
type applyResponse []rpcResponse

func (r applyResponse) marshal() []byte {
	b := mp.AppendArrayHeader(nil, len(r))
	for i := range r {
		b = r[i].appendTo(b)
	}
	return b
}

func (r *applyResponse) unmarshal(body []byte) error {
	rd := mp.NewReader(body)
	n, err := rd.ReadArrayHeader()
	if err != nil {
		return fmt.Errorf("%w: %v", abi.ErrMalformed, err)
	}
	if n > maxForwardBatch {
		return fmt.Errorf("%w: %d results", abi.ErrMalformed, n)
	}
	*r = make(applyResponse, n)
	for i := range *r {
		if err := (*r)[i].decode(rd, false); err != nil {
			return fmt.Errorf("result %d: %w", i, err)
		}
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the results", abi.ErrMalformed, rd.Len())
	}
	return nil
}

// rpcResponse is every method's answer: an error, or a result.
type rpcResponse struct {
	Code    abi.Code `msgpack:"code"`
	Data    []byte   `msgpack:"data,omitempty"`
	ErrKind int      `msgpack:"err_kind,omitempty"` // a peerrpc.Code
	Err     string   `msgpack:"err,omitempty"`
}

// marshal encodes r.
func (r *rpcResponse) marshal() []byte {
	return r.appendTo(make([]byte, 0, 1+5+5+5+mp.BinSize(len(r.Data))+9+9+4+5+len(r.Err)))
}

func (r *rpcResponse) appendTo(b []byte) []byte {
	n := 1
	if len(r.Data) > 0 {
		n++
	}
	if r.ErrKind != 0 {
		n++
	}
	if r.Err != "" {
		n++
	}
	b = mp.AppendMapHeader(b, n)
	b = mp.AppendUint(mp.AppendString(b, "code"), uint64(r.Code))
	if len(r.Data) > 0 {
		b = mp.AppendBytes(mp.AppendString(b, "data"), r.Data)
	}
	if r.ErrKind != 0 {
		b = mp.AppendInt(mp.AppendString(b, "err_kind"), int64(r.ErrKind))
	}
	if r.Err != "" {
		b = mp.AppendString(mp.AppendString(b, "err"), r.Err)
	}
	return b
}

// unmarshal decodes a response body into r (unknown keys are skipped: an
// answer is the leader's, not an attacker's, but a newer leader may add
// some).
func (r *rpcResponse) unmarshal(body []byte) error {
	return r.decode(mp.NewReader(body), true)
}

func (r *rpcResponse) decode(rd *mp.Reader, whole bool) error {
	return decodeMap(rd, whole, func(rd *mp.Reader, key []byte) error {
		var err error
		switch string(key) {
		case "code":
			var v uint64
			if v, err = readUint(rd); err == nil && v > math.MaxUint32 {
				err = mp.ErrRange
			}
			r.Code = abi.Code(v)
		case "data":
			r.Data, err = readBin(rd)
		case "err_kind":
			var v int64
			if rd.Peek() == mp.TypeNil {
				err = rd.ReadNil()
			} else if v, err = rd.ReadInt64(); err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
				err = mp.ErrRange
			}
			r.ErrKind = int(v)
		case "err":
			r.Err, err = readString(rd)
		default:
			err = rd.Skip()
		}
		return err
	})
}

var errUnknownField = errors.New("unknown field")

// decodeMap calls field for each key of the MsgPack map at rd; field reads
// (or skips) the key's value. With whole, the map must be all of rd.
func decodeMap(rd *mp.Reader, whole bool, field func(rd *mp.Reader, key []byte) error) error {
	n, err := rd.ReadMapHeader()
	if err != nil {
		return fmt.Errorf("%w: %v", abi.ErrMalformed, err)
	}
	for i := 0; i < n; i++ {
		if rd.Peek() != mp.TypeStr {
			return fmt.Errorf("%w: map key %d is not a string", abi.ErrMalformed, i)
		}
		key, err := rd.ReadBytes()
		if err == nil {
			err = field(rd, key)
		}
		if err != nil {
			if errors.Is(err, abi.ErrMalformed) {
				return fmt.Errorf("field %q: %w", key, err)
			}
			return fmt.Errorf("%w: field %q: %v", abi.ErrMalformed, key, err)
		}
	}
	if whole && rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the map", abi.ErrMalformed, rd.Len())
	}
	return nil
}

// The field readers accept nil for an absent value.

func readString(rd *mp.Reader) (string, error) {
	if rd.Peek() == mp.TypeNil {
		return "", rd.ReadNil()
	}
	b, err := rd.ReadBytes()
	return string(b), err
}

func readBin(rd *mp.Reader) ([]byte, error) {
	if rd.Peek() == mp.TypeNil {
		return nil, rd.ReadNil()
	}
	return rd.ReadBytes()
}

func readUint(rd *mp.Reader) (uint64, error) {
	if rd.Peek() == mp.TypeNil {
		return 0, rd.ReadNil()
	}
	return rd.ReadUint64()
}

package peerrpc

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/fsm"
)

// Body is the request of one method (see the package comment, "Bodies").
// The bodies are this package's types: Decode makes one of them.
type Body interface {
	Method() Method
	Marshal() ([]byte, error)
	// Subject is the node the request is about, for the Self rule of
	// Authorize ("" if none).
	Subject() string
	// ClusterToken is the cluster token the request carries ("" if none).
	ClusterToken() string
	// unmarshal decodes and validates a body.
	unmarshal(body []byte) error
}

// AdminBody is an administrative request: the forwarding node adds its
// cluster token.
type AdminBody interface {
	Body
	SetClusterToken(string)
}

// bodies makes an empty request of each method.
var bodies = map[string]func() Body{
	Ping.Name:         func() Body { return new(PingBody) },
	Status.Name:       func() Body { return new(StatusBody) },
	Apply.Name:        func() Body { return new(ApplyBody) },
	Query.Name:        func() Body { return new(QueryBody) },
	PluginList.Name:   func() Body { return new(PluginListBody) },
	Join.Name:         func() Body { return new(JoinBody) },
	Remove.Name:       func() Body { return new(RemoveBody) },
	Trust.Name:        func() Body { return new(TrustBody) },
	Deploy.Name:       func() Body { return new(DeployBody) },
	RemovePlugin.Name: func() Body { return new(RemovePluginBody) },
	SetLimits.Name:    func() Body { return new(SetLimitsBody) },
	Quarantine.Name:   func() Body { return new(QuarantineBody) },
	Addresses.Name:    func() Body { return new(AddressesBody) },
	Digest.Name:       func() Body { return new(DigestBody) },
	Voters.Name:       func() Body { return new(VotersBody) },
}

// Decode decodes body as a request of method. A body the method's type
// cannot hold (see the package comment) is refused with an error wrapping
// fsm.ErrInvalid (host.ErrInvalid) that names the method and the fault.
func Decode(method string, body []byte) (Body, error) {
	mk, ok := bodies[method]
	if !ok {
		return nil, fmt.Errorf("%w: unknown method %q", fsm.ErrInvalid, method)
	}
	req := mk()
	if err := req.unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: %s request: %w", fsm.ErrInvalid, method, err)
	}
	return req, nil
}

// MaxBatch bounds the commands of one apply request (and its results).
const MaxBatch = 1024

// Member methods: no token.

type memberBody struct{}

func (memberBody) Subject() string      { return "" }
func (memberBody) ClusterToken() string { return "" }

// PingAnswer is a node's answer to a ping: the Raft address it advertises,
// the one its Raft RPCs carry and members check against the configuration
// (host/peerauth.go). A leader adds a node only at that address: at any
// other spelling of it ("h:08088" for "h:8088", a name for an IP) the node
// would count towards the quorum, yet every vote it asks for would be
// refused. (Nodes before this answer answered a ping with no data.)
type PingAnswer struct {
	RaftAddress string `msgpack:"raft_address"`
}

// PingBody asks whether the node answers; it has no fields.
type PingBody struct{ memberBody }

func (*PingBody) Method() Method { return Ping }
func (r *PingBody) Marshal() ([]byte, error) {
	return mp.AppendMapHeader(nil, 0), nil
}
func (r *PingBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *PingBody) validate() error          { return nil }

// StatusBody asks for the node's status (answer: a host.NodeStatus).
type StatusBody struct {
	memberBody `msgpack:"-"`
	Digests    bool `msgpack:"digests,omitempty"`
}

func (*StatusBody) Method() Method             { return Status }
func (r *StatusBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *StatusBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *StatusBody) validate() error          { return nil }

// Command is one forwarded write.
type Command struct {
	Plugin string `msgpack:"plugin"`
	Key    string `msgpack:"key"` // the idempotency key ("" for none)
	Data   []byte `msgpack:"data"`
}

// ApplyBody is a batch of forwarded writes, proposed together; each has
// its own result (answer: an ApplyResponse). Its codec is hand-written
// (codec.go).
type ApplyBody struct {
	memberBody `msgpack:"-"`
	Commands   []Command `msgpack:"commands"`
}

func (*ApplyBody) Method() Method { return Apply }

// QueryBody is a forwarded read (answer: the plugin's Code and Data, in
// the Response itself). Its codec is hand-written (codec.go).
type QueryBody struct {
	memberBody `msgpack:"-"`
	Plugin     string      `msgpack:"plugin"`
	Data       []byte      `msgpack:"data"`
	Level      Consistency `msgpack:"level"`
}

func (*QueryBody) Method() Method { return Query }

// PluginListBody is a forwarded read of the plugin table (answer: a
// PluginListAnswer).
type PluginListBody struct {
	memberBody `msgpack:"-"`
	Level      Consistency `msgpack:"level"`
}

func (*PluginListBody) Method() Method             { return PluginList }
func (r *PluginListBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *PluginListBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *PluginListBody) validate() error {
	if r.Level > Linearizable {
		return fmt.Errorf("unknown consistency %d", r.Level)
	}
	return nil
}

// PluginListAnswer is the answer of a PluginListBody.
type PluginListAnswer struct {
	Plugins    []fsm.PluginInfo `msgpack:"plugins"`
	KeptStates []fsm.KeptState  `msgpack:"kept_states"`
}

// DigestBody is the request of the digest check: the caller's digests at
// Index, sorted by name (a list, not a map: a body encodes the same every
// time). Answer: a DigestAnswer.
type DigestBody struct {
	memberBody `msgpack:"-"`
	Index      uint64        `msgpack:"index"`
	Digests    []NamedDigest `msgpack:"digests"`
}

// NamedDigest is one name's fsm.PluginDigest on the wire.
type NamedDigest struct {
	Name   string `msgpack:"name"`
	State  string `msgpack:"state,omitempty"`
	Module string `msgpack:"module,omitempty"`
}

func (*DigestBody) Method() Method             { return Digest }
func (r *DigestBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *DigestBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *DigestBody) validate() error {
	if r.Index == 0 {
		return errors.New("index 0")
	}
	return nil
}

// DigestAnswer is the answer of a DigestBody: Held false when the node has
// no record at the index (Applied says how far it got).
type DigestAnswer struct {
	Held    bool          `msgpack:"held"`
	Applied uint64        `msgpack:"applied"`
	Digests []NamedDigest `msgpack:"digests,omitempty"`
}

// DigestList is m on the wire, sorted by name.
func DigestList(m map[string]fsm.PluginDigest) []NamedDigest {
	out := make([]NamedDigest, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, NamedDigest{Name: name, State: m[name].State, Module: m[name].Module})
	}
	return out
}

// DigestMap is the map ds lists.
func DigestMap(ds []NamedDigest) map[string]fsm.PluginDigest {
	m := make(map[string]fsm.PluginDigest, len(ds))
	for _, d := range ds {
		m[d.Name] = fsm.PluginDigest{State: d.State, Module: d.Module}
	}
	return m
}

// VotersBody asks a member for the voters of its latest configuration
// (answer: a VotersAnswer).
type VotersBody struct{ memberBody }

func (*VotersBody) Method() Method { return Voters }
func (r *VotersBody) Marshal() ([]byte, error) {
	return mp.AppendMapHeader(nil, 0), nil
}
func (r *VotersBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *VotersBody) validate() error          { return nil }

// VotersAnswer is the voters of the answering member's latest
// configuration, each with its trust lines.
type VotersAnswer struct {
	Voters []VouchedVoter `msgpack:"voters"`
}

// VouchedVoter is one voter of a VotersAnswer.
type VouchedVoter struct {
	ID      string   `msgpack:"id"`
	Address string   `msgpack:"address"`
	Trust   []string `msgpack:"trust"` // authorized_keys lines, the ID as comment
}

// Administrative methods: the token, if any, is inside the request.

type adminToken struct {
	Token string `msgpack:"token,omitempty"`
}

func (a *adminToken) ClusterToken() string     { return a.Token }
func (a *adminToken) SetClusterToken(t string) { a.Token = t }
func (a *adminToken) Subject() string          { return "" }

// JoinBody asks the leader to add a node (answer: a host.JoinResponse).
type JoinBody struct {
	adminToken
	Join JoinRequest `msgpack:"join"`
}

func (*JoinBody) Method() Method             { return Join }
func (r *JoinBody) Subject() string          { return r.Join.NodeID }
func (r *JoinBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *JoinBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *JoinBody) validate() error {
	if r.Join.NodeID == "" || r.Join.Address == "" {
		return errors.New("join without a node ID or an address")
	}
	return nil
}

// RemoveBody asks the leader to remove a member.
type RemoveBody struct {
	adminToken
	NodeID string `msgpack:"id"`
}

func (*RemoveBody) Method() Method             { return Remove }
func (r *RemoveBody) Subject() string          { return r.NodeID }
func (r *RemoveBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *RemoveBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *RemoveBody) validate() error          { return trust.ValidateNodeID(r.NodeID) }

// TrustBody asks the leader to trust a key (answer: the replicated trust
// lines).
type TrustBody struct {
	adminToken
	NodeID string `msgpack:"id,omitempty"` // "" when the line names it
	Line   string `msgpack:"key"`
}

func (*TrustBody) Method() Method             { return Trust }
func (r *TrustBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *TrustBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *TrustBody) validate() error {
	if r.Line == "" {
		return errors.New("trust without a key")
	}
	return nil
}

// DeployBody asks the leader to deploy a module (answer: an
// fsm.PluginInfo).
type DeployBody struct {
	adminToken
	Plugin  string        `msgpack:"plugin"`
	Wasm    []byte        `msgpack:"wasm"`
	Options DeployOptions `msgpack:"options"`
}

func (*DeployBody) Method() Method             { return Deploy }
func (r *DeployBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *DeployBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *DeployBody) validate() error          { return fsm.ValidPluginName(r.Plugin) }

// RemovePluginBody asks the leader to remove a plugin.
type RemovePluginBody struct {
	adminToken
	Plugin    string `msgpack:"plugin"`
	DropState bool   `msgpack:"drop,omitempty"`
}

func (*RemovePluginBody) Method() Method             { return RemovePlugin }
func (r *RemovePluginBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *RemovePluginBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *RemovePluginBody) validate() error          { return fsm.ValidPluginName(r.Plugin) }

// SetLimitsBody asks the leader to change a plugin's limits (answer: an
// fsm.PluginInfo).
type SetLimitsBody struct {
	adminToken
	Plugin string      `msgpack:"plugin"`
	Patch  LimitsPatch `msgpack:"patch"`
	IfHash string      `msgpack:"if_hash,omitempty"`
}

func (*SetLimitsBody) Method() Method             { return SetLimits }
func (r *SetLimitsBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *SetLimitsBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *SetLimitsBody) validate() error          { return fsm.ValidPluginName(r.Plugin) }

// QuarantineBody asks the leader to quarantine a plugin.
type QuarantineBody struct {
	adminToken
	Plugin string `msgpack:"plugin"`
	Reason string `msgpack:"reason,omitempty"`
}

func (*QuarantineBody) Method() Method             { return Quarantine }
func (r *QuarantineBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *QuarantineBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *QuarantineBody) validate() error          { return fsm.ValidPluginName(r.Plugin) }

// AddressesBody publishes a member's addresses.
type AddressesBody struct {
	adminToken
	Addresses fsm.MemberAddresses `msgpack:"addresses"`
}

func (*AddressesBody) Method() Method             { return Addresses }
func (r *AddressesBody) Subject() string          { return r.Addresses.NodeID }
func (r *AddressesBody) Marshal() ([]byte, error) { return msgpack.Marshal(r) }
func (r *AddressesBody) unmarshal(b []byte) error { return decodeStrict(b, r) }
func (r *AddressesBody) validate() error          { return r.Addresses.Validate() }

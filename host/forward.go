package host

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/plugins/sdk/mp"
)

// RPC methods on the SSH "rpc" channel. Followers send these to the leader;
// the leader never forwards them again, so there are no forwarding loops.
const (
	rpcApply        = "apply"
	rpcQuery        = "query"
	rpcJoin         = "join"
	rpcRemove       = "remove"
	rpcTrust        = "trust"
	rpcDeploy       = "deploy"
	rpcRemovePlugin = "remove-plugin"
	rpcPing         = "ping"
)

type rpcRequest struct {
	Plugin string       `msgpack:"plugin,omitempty"`
	Data   []byte       `msgpack:"data,omitempty"`
	Level  Consistency  `msgpack:"level,omitempty"`
	Join   *JoinRequest `msgpack:"join,omitempty"`
	NodeID string       `msgpack:"id,omitempty"`
	Key    string       `msgpack:"key,omitempty"`
	Drop   bool         `msgpack:"drop,omitempty"`
}

type rpcResponse struct {
	Code    abi.Code `msgpack:"code"`
	Data    []byte   `msgpack:"data,omitempty"`
	ErrKind int      `msgpack:"err_kind,omitempty"` // index in sentinels + 1; -1: other
	Err     string   `msgpack:"err,omitempty"`
}

// RPC bodies are the MsgPack maps that abi.Marshal makes of rpcRequest and
// rpcResponse (the keys of their msgpack tags, empty fields left out), but
// they are encoded and decoded by hand: the reflection-based codec cost about
// 1.7 µs and 23 allocations per forwarded call (its four encodes and
// decodes), on the forwarding hot path. The decoders accept any encoding of
// those maps (abi.Marshal's included: an older node's) and skip unknown keys,
// as the reflection decoder does; abi.Unmarshal decodes what the encoders
// make. Decoded byte fields alias the body (a fresh buffer per message).

// marshal encodes r. Only a join request (rare) goes through reflection, for
// its nested JoinRequest.
func (r *rpcRequest) marshal() ([]byte, error) {
	var join []byte
	if r.Join != nil {
		var err error
		if join, err = abi.Marshal(r.Join); err != nil {
			return nil, err
		}
	}
	n, size := 0, 0
	field := func(present bool, key string, valueSize int) {
		if present {
			n++
			size += 1 + len(key) + valueSize
		}
	}
	field(r.Plugin != "", "plugin", 5+len(r.Plugin))
	field(len(r.Data) > 0, "data", mp.BinSize(len(r.Data)))
	field(r.Level != 0, "level", mp.UintSize(uint64(r.Level)))
	field(join != nil, "join", len(join))
	field(r.NodeID != "", "id", 5+len(r.NodeID))
	field(r.Key != "", "key", 5+len(r.Key))
	field(r.Drop, "drop", 1)
	b := mp.AppendMapHeader(make([]byte, 0, 1+size), n)
	if r.Plugin != "" {
		b = mp.AppendString(mp.AppendString(b, "plugin"), r.Plugin)
	}
	if len(r.Data) > 0 {
		b = mp.AppendBytes(mp.AppendString(b, "data"), r.Data)
	}
	if r.Level != 0 {
		b = mp.AppendUint(mp.AppendString(b, "level"), uint64(r.Level))
	}
	if join != nil {
		b = append(mp.AppendString(b, "join"), join...)
	}
	if r.NodeID != "" {
		b = mp.AppendString(mp.AppendString(b, "id"), r.NodeID)
	}
	if r.Key != "" {
		b = mp.AppendString(mp.AppendString(b, "key"), r.Key)
	}
	if r.Drop {
		b = mp.AppendBool(mp.AppendString(b, "drop"), true)
	}
	return b, nil
}

// unmarshal decodes a request body into r.
func (r *rpcRequest) unmarshal(body []byte) error {
	return decodeMap(body, func(rd *mp.Reader, key []byte) error {
		var err error
		switch string(key) {
		case "plugin":
			r.Plugin, err = readString(rd)
		case "data":
			r.Data, err = readBin(rd)
		case "level":
			var v uint64
			if v, err = readUint(rd); err == nil && v > math.MaxUint8 {
				err = mp.ErrRange
			}
			r.Level = Consistency(v)
		case "join":
			if rd.Peek() == mp.TypeNil {
				return rd.ReadNil()
			}
			var raw []byte
			if raw, err = rd.ReadRaw(); err == nil {
				r.Join = new(JoinRequest)
				err = abi.Unmarshal(raw, r.Join)
			}
		case "id":
			r.NodeID, err = readString(rd)
		case "key":
			r.Key, err = readString(rd)
		case "drop":
			r.Drop, err = readBool(rd)
		default:
			err = rd.Skip()
		}
		return err
	})
}

// marshal encodes r.
func (r *rpcResponse) marshal() []byte {
	n, size := 1, 1+len("code")+mp.UintSize(uint64(r.Code))
	if len(r.Data) > 0 {
		n, size = n+1, size+1+len("data")+mp.BinSize(len(r.Data))
	}
	if r.ErrKind != 0 {
		n, size = n+1, size+1+len("err_kind")+9
	}
	if r.Err != "" {
		n, size = n+1, size+1+len("err")+5+len(r.Err)
	}
	b := mp.AppendMapHeader(make([]byte, 0, 1+size), n)
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

// unmarshal decodes a response body into r.
func (r *rpcResponse) unmarshal(body []byte) error {
	return decodeMap(body, func(rd *mp.Reader, key []byte) error {
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

// decodeMap calls field for each key of the MsgPack map that is the whole of
// body; field reads (or skips) the key's value.
func decodeMap(body []byte, field func(rd *mp.Reader, key []byte) error) error {
	rd := mp.NewReader(body)
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
			return fmt.Errorf("%w: field %q: %v", abi.ErrMalformed, key, err)
		}
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the map", abi.ErrMalformed, rd.Len())
	}
	return nil
}

// The field readers accept nil for an absent value, as the reflection
// decoder does.

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

func readBool(rd *mp.Reader) (bool, error) {
	if rd.Peek() == mp.TypeNil {
		return false, rd.ReadNil()
	}
	return rd.ReadBool()
}

// sentinels are the errors that keep their identity across forwarding.
var sentinels = []error{
	ErrNotLeader, ErrNoLeader, ErrTimeout, ErrUnknownOutcome, ErrUnknownPlugin,
	ErrInvalid, ErrClosed, ErrStopped, ErrNotFound,
}

func encodeErr(err error) (int, string) {
	for i, s := range sentinels {
		if errors.Is(err, s) {
			return i + 1, err.Error()
		}
	}
	return -1, err.Error()
}

// remoteErr rebuilds an error from a response: errors.Is still matches the
// sentinel, and the message is the leader's.
type remoteErr struct {
	sentinel error
	msg      string
}

func (e *remoteErr) Error() string { return e.msg }
func (e *remoteErr) Unwrap() error { return e.sentinel }

func decodeErr(kind int, msg string) error {
	if kind > 0 && kind <= len(sentinels) {
		return &remoteErr{sentinels[kind-1], msg}
	}
	return errors.New(msg)
}

// forward sends a request to the leader and returns its answer.
func (n *Node) forward(ctx context.Context, method string, req *rpcRequest) (abi.Result, error) {
	addr, id := n.raft.LeaderWithID()
	if addr == "" {
		return abi.Result{}, ErrNoLeader
	}
	if string(id) == n.cfg.NodeID { // became leader meanwhile
		return n.dispatch(ctx, method, req)
	}
	// Raft learned the leader's ID and address from its heartbeats, possibly
	// before this node saw the configuration entry naming it. The transport
	// still checks that the host key at addr is bound to that ID. (Checked
	// under the read lock first: every forwarded call passes here.)
	n.peersMu.RLock()
	known := n.peers[string(addr)] == string(id)
	n.peersMu.RUnlock()
	if !known {
		n.setPeers(raft.Configuration{Servers: []raft.Server{{ID: id, Address: addr}}})
	}
	if _, ok := ctx.Deadline(); !ok {
		timeout := n.cfg.ApplyTimeout
		if method == rpcDeploy {
			timeout += 2 * time.Minute // the leader compiles the module first
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	body, err := req.marshal()
	if err != nil {
		return abi.Result{}, err
	}
	raw, err := n.trans.Call(ctx, string(addr), method, body)
	if err != nil {
		var re *transport.RemoteError
		switch {
		case ctx.Err() != nil:
			return abi.Result{}, fmt.Errorf("%w: forwarding to leader %s: %v (a write may still be applied)", ErrTimeout, id, err)
		case errors.As(err, &re):
			return abi.Result{}, fmt.Errorf("raftkv: leader %s: %s", id, re.Message)
		}
		if method == rpcQuery || method == rpcPing {
			return abi.Result{}, fmt.Errorf("%w: leader %s unreachable: %v", ErrNoLeader, id, err)
		}
		// The request may have reached the leader before the connection failed.
		return abi.Result{}, fmt.Errorf("%w: forwarding to leader %s failed: %v", ErrUnknownOutcome, id, err)
	}
	var resp rpcResponse
	if err := resp.unmarshal(raw); err != nil {
		return abi.Result{}, fmt.Errorf("raftkv: bad response from leader %s: %w", id, err)
	}
	if resp.ErrKind != 0 {
		return abi.Result{}, decodeErr(resp.ErrKind, resp.Err)
	}
	return abi.Result{Code: resp.Code, Data: resp.Data}, nil
}

// handleRPC serves requests that followers forward to this node.
func (n *Node) handleRPC(ctx context.Context, peerID, method string, body []byte) ([]byte, error) {
	var req rpcRequest
	if err := req.unmarshal(body); err != nil {
		return nil, fmt.Errorf("malformed request from %s: %v", peerID, err)
	}
	var resp rpcResponse
	res, err := n.dispatchLeader(ctx, method, &req)
	if err != nil {
		resp.ErrKind, resp.Err = encodeErr(err)
	} else {
		resp.Code, resp.Data = res.Code, res.Data
	}
	return resp.marshal(), nil
}

// dispatchLeader runs a forwarded request only if this node leads (except
// ping and stale reads), so a request is forwarded at most once.
func (n *Node) dispatchLeader(ctx context.Context, method string, req *rpcRequest) (abi.Result, error) {
	if method == rpcPing {
		return abi.Result{}, nil
	}
	if !n.isLeader() && !(method == rpcQuery && req.Level == Stale) {
		return abi.Result{}, ErrNotLeader
	}
	return n.dispatch(ctx, method, req)
}

// dispatch runs a request locally; this node is the leader.
func (n *Node) dispatch(ctx context.Context, method string, req *rpcRequest) (abi.Result, error) {
	switch method {
	case rpcApply:
		return n.applyLocal(ctx, req.Plugin, req.Data)
	case rpcQuery:
		return n.queryLocal(ctx, req.Plugin, req.Data, req.Level)
	case rpcJoin:
		if req.Join == nil {
			return abi.Result{}, fmt.Errorf("%w: join request without a body", ErrInvalid)
		}
		resp, err := n.joinLocal(ctx, *req.Join)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&resp)
		return abi.Result{Data: data}, err
	case rpcRemove:
		return abi.Result{}, n.removeLocal(ctx, req.NodeID)
	case rpcTrust:
		if err := n.trustLocal(ctx, req.NodeID, req.Key); err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(n.joinResponse().Trust)
		return abi.Result{Data: data}, err
	case rpcDeploy:
		info, err := n.deployLocal(ctx, req.Plugin, req.Data)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&info)
		return abi.Result{Data: data}, err
	case rpcRemovePlugin:
		return abi.Result{}, n.removePluginLocal(ctx, req.Plugin, req.Drop)
	}
	return abi.Result{}, fmt.Errorf("%w: unknown method %q", ErrInvalid, method)
}

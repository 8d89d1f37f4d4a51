package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/transport"
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
	// still checks that the host key at addr is bound to that ID.
	n.setPeers(raft.Configuration{Servers: []raft.Server{{ID: id, Address: addr}}})
	if _, ok := ctx.Deadline(); !ok {
		timeout := n.cfg.ApplyTimeout
		if method == rpcDeploy {
			timeout += 2 * time.Minute // the leader compiles the module first
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	body, err := abi.Marshal(req)
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
	if err := abi.Unmarshal(raw, &resp); err != nil {
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
	if err := abi.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("malformed request from %s: %v", peerID, err)
	}
	var resp rpcResponse
	res, err := n.dispatchLeader(ctx, method, &req)
	if err != nil {
		resp.ErrKind, resp.Err = encodeErr(err)
	} else {
		resp.Code, resp.Data = res.Code, res.Data
	}
	return abi.Marshal(&resp)
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

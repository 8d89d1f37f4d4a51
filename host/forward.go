package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/host/transport"
)

// RPC methods on the SSH "rpc" channel. Followers send these to the leader;
// the leader never forwards them again, so there are no forwarding loops.
const (
	rpcApply        = "apply"
	rpcQuery        = "query"
	rpcPluginList   = "plugin-list"
	rpcJoin         = "join"
	rpcRemove       = "remove"
	rpcTrust        = "trust"
	rpcDeploy       = "deploy"
	rpcRemovePlugin = "remove-plugin"
	rpcSetLimits    = "set-limits"
	rpcQuarantine   = "quarantine"
	rpcAddresses    = "addresses" // a member's API and management addresses (addresses.go)
	rpcPing         = "ping"
	rpcStatus       = "status" // the node's NodeStatus (see ClusterStatus); answered by any node
)

// codes are the errors that keep their identity across forwarding, by
// their stable wire code.
var codes = []struct {
	code peerrpc.Code
	err  error
}{
	// Degraded first: its errors may also say that no leader is known.
	{peerrpc.CodeDegraded, ErrDegraded},
	{peerrpc.CodeNotLeader, ErrNotLeader}, {peerrpc.CodeNoLeader, ErrNoLeader}, {peerrpc.CodeTimeout, ErrTimeout},
	{peerrpc.CodeUnknownOutcome, ErrUnknownOutcome}, {peerrpc.CodeUnknownPlugin, ErrUnknownPlugin},
	{peerrpc.CodeInvalid, ErrInvalid}, {peerrpc.CodeClosed, ErrClosed}, {peerrpc.CodeStopped, ErrStopped},
	{peerrpc.CodeNotFound, ErrNotFound}, {peerrpc.CodeNotReady, ErrNotReady}, {peerrpc.CodePrecondition, ErrPrecondition},
	{peerrpc.CodeConflict, ErrConflict}, {peerrpc.CodeQuarantined, ErrQuarantined}, {peerrpc.CodeForbidden, ErrForbidden},
}

func encodeErr(err error) (int, string) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return int(c.code), err.Error()
		}
	}
	return int(peerrpc.CodeOther), err.Error()
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
	for _, c := range codes {
		if int(c.code) == kind {
			return &remoteErr{c.err, msg}
		}
	}
	return errors.New(msg)
}

// forward sends a request to the leader and returns its answer.
func (n *Node) forward(ctx context.Context, req rpcBody) (abi.Result, error) {
	method := req.method().Name
	addr, id := n.raft.LeaderWithID()
	if addr == "" {
		return abi.Result{}, ErrNoLeader
	}
	if string(id) == n.cfg.NodeID { // became leader meanwhile
		return n.dispatch(ctx, req)
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
		switch method {
		case rpcDeploy, rpcSetLimits:
			timeout += 2 * time.Minute // the leader compiles the module first
		case rpcJoin:
			timeout += time.Minute // the leader waits for the new member to catch up
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if a, ok := req.(adminBody); ok && n.cfg.Token != "" {
		a.setToken(n.cfg.Token)
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
		if method == rpcQuery || method == rpcPluginList || method == rpcPing || neverSent(err) {
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

// result is the outcome r carries.
func (r *rpcResponse) result() (abi.Result, error) {
	if r.ErrKind != 0 {
		return abi.Result{}, decodeErr(r.ErrKind, r.Err)
	}
	return abi.Result{Code: r.Code, Data: r.Data}, nil
}

// callMember calls method on the member at addr with body (ctx bounds it)
// and decodes the answer's data into out: the member RPCs any node answers
// about itself (status, digest, voters).
func (n *Node) callMember(ctx context.Context, addr, method string, body []byte, out any) error {
	raw, err := n.trans.Call(ctx, addr, method, body)
	if err != nil {
		return err
	}
	var resp rpcResponse
	if err := resp.unmarshal(raw); err != nil {
		return err
	}
	if resp.ErrKind != 0 {
		return decodeErr(resp.ErrKind, resp.Err)
	}
	if err := abi.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("malformed %s answer: %w", method, err)
	}
	return nil
}

// neverSent reports whether a call failed before its request could leave:
// no connection to the leader could be made (it is down), so a write was
// certainly not applied and a client may send it again.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// handleRPC serves requests that followers forward to this node.
func (n *Node) handleRPC(ctx context.Context, peerID, method string, body []byte) ([]byte, error) {
	var resp rpcResponse
	res, err := n.serveForwarded(ctx, peerID, method, body)
	if err != nil {
		resp.ErrKind, resp.Err = encodeErr(err)
	} else {
		resp.Code, resp.Data = res.Code, res.Data
	}
	return resp.marshal(), nil
}

// serveForwarded decodes, authorizes and runs a forwarded request. A caller
// that is not a member may only ask to join: its other requests are refused
// before their bodies are decoded.
func (n *Node) serveForwarded(ctx context.Context, peerID, method string, body []byte) (abi.Result, error) {
	if m, ok := peerrpc.Lookup(method); ok && m.Name != peerrpc.Join.Name && n.roleOf(peerID) == peerrpc.Trusted {
		if err := n.authorizeRPC(peerID, m, nil); err != nil {
			return abi.Result{}, err
		}
	}
	req, err := decodeRPC(method, body)
	if err != nil {
		n.metrics.rpcRefused.Inc()
		n.log.Warn("refused a malformed peer RPC", "peer", peerID, "method", method, "reason", err.Error())
		return abi.Result{}, err
	}
	if err := n.authorizeRPC(peerID, req.method(), req); err != nil {
		return abi.Result{}, err
	}
	if r, ok := req.(*digestRPC); ok { // any member answers, about the caller (digestcheck.go)
		return n.answerDigest(ctx, peerID, r)
	}
	if _, ok := req.(*votersRPC); ok { // any member answers (vouch.go)
		return n.answerVoters()
	}
	return n.dispatchLeader(ctx, req)
}

// dispatchLeader runs a forwarded request only if this node leads (except
// ping, status and stale reads), so a request is forwarded at most once.
func (n *Node) dispatchLeader(ctx context.Context, req rpcBody) (abi.Result, error) {
	switch r := req.(type) {
	case *pingRequest:
		return abi.Result{}, nil
	case *statusRequest:
		data, err := abi.Marshal(n.Status(r.Digests))
		return abi.Result{Data: data}, err
	case *queryRequest:
		if r.Level == Stale {
			return n.dispatch(ctx, req)
		}
	}
	if !n.isLeader() {
		return abi.Result{}, ErrNotLeader
	}
	return n.dispatch(ctx, req)
}

// dispatch runs a request locally; this node is the leader.
func (n *Node) dispatch(ctx context.Context, req rpcBody) (abi.Result, error) {
	switch r := req.(type) {
	case *applyRequest:
		return abi.Result{Data: n.applyForwarded(ctx, r.Commands).marshal()}, nil
	case *queryRequest:
		return n.queryLocal(ctx, r.Plugin, r.Data, r.Level)
	case *pluginListRPC:
		var l pluginList
		var err error
		if l.Plugins, l.KeptStates, err = n.pluginsLocal(ctx, r.Level); err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&l)
		return abi.Result{Data: data}, err
	case *joinRPC:
		resp, err := n.joinLocal(ctx, r.Join)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&resp)
		return abi.Result{Data: data}, err
	case *removeRPC:
		return abi.Result{}, n.removeLocal(ctx, r.NodeID)
	case *trustRPC:
		if err := n.trustLocal(ctx, r.NodeID, r.Line); err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(n.joinResponse().Trust)
		return abi.Result{Data: data}, err
	case *deployRPC:
		info, err := n.deployLocal(ctx, r.Plugin, r.Wasm, r.Options)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&info)
		return abi.Result{Data: data}, err
	case *removePluginRPC:
		return abi.Result{}, n.removePluginLocal(ctx, r.Plugin, r.DropState)
	case *quarantineRPC:
		return abi.Result{}, n.quarantineLocal(ctx, r.Plugin, r.Reason)
	case *setLimitsRPC:
		info, err := n.setLimitsLocal(ctx, r.Plugin, r.Patch, r.IfHash)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&info)
		return abi.Result{Data: data}, err
	case *addressesRPC:
		return abi.Result{}, n.setAddressesLocal(ctx, r.Addresses)
	case *pingRequest, *statusRequest:
		return n.dispatchLeader(ctx, req)
	}
	return abi.Result{}, fmt.Errorf("%w: unknown request %T", ErrInvalid, req)
}

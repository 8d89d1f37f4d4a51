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

// Forwarding, the node's half: the protocol (the bodies, their codecs, the
// error codes, the batching of forwarded writes) is host/peerrpc's; here
// are the calls that need a Node. Followers send requests to the leader;
// the leader never forwards them again, so there are no forwarding loops.

// forward sends a request to the leader and returns its answer.
func (n *Node) forward(ctx context.Context, req peerrpc.Body) (abi.Result, error) {
	method := req.Method().Name
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
		case peerrpc.Deploy.Name, peerrpc.SetLimits.Name:
			timeout += 2 * time.Minute // the leader compiles the module first
		case peerrpc.Join.Name:
			timeout += time.Minute // the leader waits for the new member to catch up
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if a, ok := req.(peerrpc.AdminBody); ok && n.cfg.Token != "" {
		a.SetClusterToken(n.cfg.Token)
	}
	body, err := req.Marshal()
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
		if method == peerrpc.Query.Name || method == peerrpc.PluginList.Name || method == peerrpc.Ping.Name || neverSent(err) {
			return abi.Result{}, fmt.Errorf("%w: leader %s unreachable: %v", ErrNoLeader, id, err)
		}
		// The request may have reached the leader before the connection failed.
		return abi.Result{}, fmt.Errorf("%w: forwarding to leader %s failed: %v", ErrUnknownOutcome, id, err)
	}
	var resp peerrpc.Response
	if err := resp.Unmarshal(raw); err != nil {
		return abi.Result{}, fmt.Errorf("raftkv: bad response from leader %s: %w", id, err)
	}
	return resp.Result()
}

// callMember calls method on the member at addr with body (ctx bounds it)
// and decodes the answer's data into out: the member RPCs any node answers
// about itself (status, digest, voters).
func (n *Node) callMember(ctx context.Context, addr, method string, body []byte, out any) error {
	raw, err := n.trans.Call(ctx, addr, method, body)
	if err != nil {
		return err
	}
	var resp peerrpc.Response
	if err := resp.Unmarshal(raw); err != nil {
		return err
	}
	res, err := resp.Result()
	if err != nil {
		return err
	}
	if err := abi.Unmarshal(res.Data, out); err != nil {
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
	resp := peerrpc.ResponseOf(n.serveForwarded(ctx, peerID, method, body))
	return resp.Marshal(), nil
}

// serveForwarded decodes, authorizes and runs a forwarded request. A caller
// that is not a member may only ping and ask to join: its other requests
// are refused before their bodies are decoded.
func (n *Node) serveForwarded(ctx context.Context, peerID, method string, body []byte) (abi.Result, error) {
	if m, ok := peerrpc.Lookup(method); ok && m.Name != peerrpc.Join.Name && n.roleOf(peerID) == peerrpc.Trusted {
		if err := n.authorizeRPC(peerID, m, nil); err != nil {
			return abi.Result{}, err
		}
	}
	req, err := peerrpc.Decode(method, body)
	if err != nil {
		n.metrics.rpcRefused.Inc()
		n.log.Warn("refused a malformed peer RPC", "peer", peerID, "method", method, "reason", err.Error())
		return abi.Result{}, err
	}
	if err := n.authorizeRPC(peerID, req.Method(), req); err != nil {
		return abi.Result{}, err
	}
	if r, ok := req.(*peerrpc.DigestBody); ok { // any member answers, about the caller (digestcheck.go)
		return n.answerDigest(ctx, peerID, r)
	}
	if _, ok := req.(*peerrpc.VotersBody); ok { // any member answers (vouch.go)
		return n.answerVoters()
	}
	return n.dispatchLeader(ctx, req)
}

// dispatchLeader runs a forwarded request only if this node leads (except
// ping, status and stale reads), so a request is forwarded at most once.
func (n *Node) dispatchLeader(ctx context.Context, req peerrpc.Body) (abi.Result, error) {
	switch r := req.(type) {
	case *peerrpc.PingBody:
		addr := n.cfg.advertise()
		if n.trans != nil { // always, but in unit tests of a bare Node
			addr = n.trans.Addr().String() // what its Raft RPCs carry
		}
		data, err := abi.Marshal(&peerrpc.PingAnswer{RaftAddress: addr})
		return abi.Result{Data: data}, err
	case *peerrpc.StatusBody:
		data, err := abi.Marshal(n.Status(r.Digests))
		return abi.Result{Data: data}, err
	case *peerrpc.QueryBody:
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
func (n *Node) dispatch(ctx context.Context, req peerrpc.Body) (abi.Result, error) {
	switch r := req.(type) {
	case *peerrpc.ApplyBody:
		return abi.Result{Data: n.applyForwarded(ctx, r.Commands).Marshal()}, nil
	case *peerrpc.QueryBody:
		return n.queryLocal(ctx, r.Plugin, r.Data, r.Level)
	case *peerrpc.PluginListBody:
		var l peerrpc.PluginListAnswer
		var err error
		if l.Plugins, l.KeptStates, err = n.pluginsLocal(ctx, r.Level); err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&l)
		return abi.Result{Data: data}, err
	case *peerrpc.JoinBody:
		resp, err := n.joinLocal(ctx, r.Join)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&resp)
		return abi.Result{Data: data}, err
	case *peerrpc.RemoveBody:
		return abi.Result{}, n.removeLocal(ctx, r.NodeID)
	case *peerrpc.TrustBody:
		if err := n.trustLocal(ctx, r.NodeID, r.Line); err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(n.joinResponse().Trust)
		return abi.Result{Data: data}, err
	case *peerrpc.DeployBody:
		info, err := n.deployLocal(ctx, r.Plugin, r.Wasm, r.Options)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&info)
		return abi.Result{Data: data}, err
	case *peerrpc.RemovePluginBody:
		return abi.Result{}, n.removePluginLocal(ctx, r.Plugin, r.DropState)
	case *peerrpc.QuarantineBody:
		return abi.Result{}, n.quarantineLocal(ctx, r.Plugin, r.Reason)
	case *peerrpc.SetLimitsBody:
		info, err := n.setLimitsLocal(ctx, r.Plugin, r.Patch, r.IfHash)
		if err != nil {
			return abi.Result{}, err
		}
		data, err := abi.Marshal(&info)
		return abi.Result{Data: data}, err
	case *peerrpc.AddressesBody:
		return abi.Result{}, n.setAddressesLocal(ctx, r.Addresses)
	case *peerrpc.PingBody, *peerrpc.StatusBody:
		return n.dispatchLeader(ctx, req)
	}
	return abi.Result{}, fmt.Errorf("%w: unknown request %T", ErrInvalid, req)
}

package evilpeer

import (
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/host/peerrpc"
)

// CallMap sends a forwarding RPC whose body is the MsgPack map req (any
// fields, as an attacker likes) and returns the answer's error code and
// message: 0 and "" for success.
func (p *Peer) CallMap(ctx context.Context, method string, req map[string]any) (peerrpc.Code, string, error) {
	body, err := msgpack.Marshal(req)
	if err != nil {
		return 0, "", err
	}
	raw, err := p.Call(ctx, method, body)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", method, err)
	}
	var resp struct {
		Kind int    `msgpack:"err_kind"`
		Err  string `msgpack:"err"`
	}
	if err := msgpack.Unmarshal(raw, &resp); err != nil {
		return 0, "", fmt.Errorf("%s: the answer: %w", method, err)
	}
	return peerrpc.Code(resp.Kind), resp.Err, nil
}

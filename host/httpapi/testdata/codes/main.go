//go:build wasip1

// Command codes is an SDK plugin whose every command is a MsgPack unsigned
// integer: the result code it answers with (0: success).
package main

import (
	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/plugins/sdk"
)

type codes struct{}

func (codes) Apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	c, err := mp.NewReader(e.Data).ReadUint64()
	if err != nil {
		return nil, sdk.Errorf(abi.CodeBadRequest, "want a code: %v", err)
	}
	if c == 0 {
		return mp.AppendNil(nil), nil
	}
	return nil, sdk.Errorf(abi.Code(c), "code %d", c)
}

func (codes) Query(st sdk.State, q []byte) ([]byte, error) { return mp.AppendNil(nil), nil }

func init() { sdk.Register(codes{}) }

func main() {}

package host

import (
	"testing"

	"github.com/raftkv/raftkv/host/peerrpc"
)

// TestEveryMethodHasAPolicy: a method the node forwards but peerrpc does
// not know would be refused as unknown by every receiver.
func TestEveryMethodHasAPolicy(t *testing.T) {
	for _, m := range []string{rpcApply, rpcQuery, rpcPluginList, rpcJoin, rpcRemove, rpcTrust, rpcDeploy, rpcRemovePlugin,
		rpcSetLimits, rpcQuarantine, rpcAddresses, rpcPing, rpcStatus} {
		if _, ok := peerrpc.Lookup(m); !ok {
			t.Errorf("method %q has no entry in peerrpc", m)
		}
	}
}

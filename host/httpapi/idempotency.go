package httpapi

import (
	"context"
	"net/http"

	"github.com/raftkv/raftkv/abi"
)

// Writes carry an optional Idempotency-Key header (1 to 128 printable ASCII
// characters). The cluster keeps recent keys with their results, so a write
// sent again with the same key after a timeout, a lost connection or an
// unknown_outcome is not applied twice: it gets the first result (see
// host.Node.ApplyOnce). Every answer says so with X-Raftkv-Idempotency,
// which the client package waits for before it retries keyed writes.
const (
	idempotencyKeyHeader = "Idempotency-Key"
	idempotencyHeader    = "X-Raftkv-Idempotency"
)

var idempotencySupported = []string{"v1"}

// apply proposes a command with the request's idempotency key, if any. A
// request with two keys is refused: which one would the client retry with?
func (a *API) apply(ctx context.Context, r *http.Request, plugin string, cmd []byte) (abi.Result, error) {
	keys := r.Header.Values(idempotencyKeyHeader)
	if len(keys) > 1 {
		return abi.Result{}, badRequest("%s is given %d times: send one", idempotencyKeyHeader, len(keys))
	}
	return a.node.ApplyOnce(ctx, plugin, r.Header.Get(idempotencyKeyHeader), cmd)
}

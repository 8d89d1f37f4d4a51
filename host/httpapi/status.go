package httpapi

import (
	"context"
	"net/http"

	"github.com/raftkv/raftkv/host"
)

// statusAnswer is GET /v1/status: the node's status and its request
// counters.
type statusAnswer struct {
	host.NodeStatus
	// Writes and Reads count the key-value and plugin requests this node
	// answered with success since it started (a rate is their change over
	// time).
	Writes uint64 `json:"writes"`
	Reads  uint64 `json:"reads"`
}

// status serves GET /v1/status[?digests=true]: this node's status.
func (a *API) status(_ context.Context, w http.ResponseWriter, r *http.Request) error {
	digests, err := boolQuery(r, "digests")
	if err != nil {
		return err
	}
	return writeJSON(w, statusAnswer{NodeStatus: a.node.Status(digests), Writes: a.writes.Load(), Reads: a.reads.Load()})
}

// clusterStatus serves GET /v1/status/cluster[?digests=true]: every
// member's status, asked over the node-to-node transport by this node.
func (a *API) clusterStatus(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	digests, err := boolQuery(r, "digests")
	if err != nil {
		return err
	}
	nodes, err := a.node.ClusterStatus(ctx, digests)
	if err != nil {
		return err
	}
	return writeJSON(w, struct {
		Nodes []host.NodeStatus `json:"nodes"`
	}{nodes})
}

// boolQuery reads an optional true/false query parameter.
func boolQuery(r *http.Request, name string) (bool, error) {
	v, _, err := queryValue(r.URL.RawQuery, name)
	if err != nil {
		return false, err
	}
	switch v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, badRequest("%s must be true or false, not %q", name, v)
	}
}

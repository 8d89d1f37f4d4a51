package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ClusterInfo is a node's view of the cluster (GET /v1/cluster).
type ClusterInfo struct {
	NodeID       string   `json:"node_id"`
	Leader       string   `json:"leader"` // the leader's ID; "" when the node knows none
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Version      string   `json:"version"` // the node's build
	Members      []Member `json:"members"`
	// Removed, when set, says why the node takes no part in the cluster
	// (it was removed): Members is its last view, out of date.
	Removed string `json:"removed,omitempty"`
}

// Member is a member of the cluster as a node sees it.
type Member struct {
	ID          string `json:"id"`
	Address     string `json:"address"`               // Raft (SSH) address
	APIAddress  string `json:"api_address,omitempty"` // HTTP API address, when the cluster records it
	MgmtAddress string `json:"mgmt_address,omitempty"`
	Suffrage    string `json:"suffrage"` // "voter" or "nonvoter"
	Leader      bool   `json:"leader"`
	// Reachable and LastContact are the answering node's knowledge: the
	// leader pings every member.
	Reachable   bool      `json:"reachable"`
	LastContact time.Time `json:"last_contact,omitzero"`
}

// Cluster returns a node's view of the cluster.
func (c *Client) Cluster(ctx context.Context) (ClusterInfo, error) {
	var info ClusterInfo
	err := c.doJSON(ctx, Request{Method: http.MethodGet, Path: "/v1/cluster"}, nil, &info)
	return info, err
}

// Members returns the cluster's members.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	info, err := c.Cluster(ctx)
	return info.Members, err
}

// Leader returns the leader's ID and the endpoint the client reaches it at
// ("" when the leader is not among the client's endpoints).
func (c *Client) Leader(ctx context.Context) (id, endpoint string, err error) {
	info, err := c.Cluster(ctx)
	if err != nil {
		return "", "", err
	}
	if info.Leader == "" {
		return "", "", &Error{Status: http.StatusServiceUnavailable, Code: CodeNoLeader, Message: "the cluster has no leader"}
	}
	if c.pinned != nil {
		return info.Leader, "", nil
	}
	c.mu.Lock()
	c.leader = nil
	c.refreshed = time.Time{}
	c.mu.Unlock()
	c.discover(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != nil && c.leader.nodeID == info.Leader {
		endpoint = c.leader.url
	}
	return info.Leader, endpoint, nil
}

// BuildInfo is a node's build (GET /v1/version).
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	BuildTime string `json:"build_time,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Version returns the answering node's build.
func (c *Client) Version(ctx context.Context) (BuildInfo, error) {
	var bi BuildInfo
	err := c.doJSON(ctx, Request{Method: http.MethodGet, Path: "/v1/version"}, nil, &bi)
	return bi, err
}

// Healthy returns nil when the node serves and applies the log (GET
// /healthz); use At for a given node.
func (c *Client) Healthy(ctx context.Context) error { return c.probe(ctx, "/healthz") }

// Ready returns nil when the node knows a leader and has applied the
// commit index (GET /readyz).
func (c *Client) Ready(ctx context.Context) error { return c.probe(ctx, "/readyz") }

func (c *Client) probe(ctx context.Context, path string) error {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: path})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// JoinRequest asks the cluster to add a node.
type JoinRequest struct {
	ID       string `json:"id"`
	Address  string `json:"address"` // the node's Raft (SSH) address
	NonVoter bool   `json:"non_voter,omitempty"`
	// PublicKey, if set, is trusted in the same request.
	PublicKey string `json:"public_key,omitempty"`
}

// Join adds a node whose key is trusted (or given) and returns the trust
// list. Joining again with the same ID and address succeeds.
func (c *Client) Join(ctx context.Context, req JoinRequest) ([]string, error) {
	var out struct {
		Trust []string `json:"trust"`
	}
	err := c.doJSON(ctx, Request{Method: http.MethodPost, Path: "/v1/cluster/join", Write: true, Leader: true, Idempotent: true}, req, &out)
	return out.Trust, err
}

// Trust adds a trust line ("ssh-ed25519 AAAA… id"; id names the node when
// the line does not) to the replicated trust list and returns every line.
func (c *Client) Trust(ctx context.Context, line, id string) ([]string, error) {
	in := map[string]string{"line": line}
	if id != "" {
		in["id"] = id
	}
	var out struct {
		Trust []string `json:"trust"`
	}
	err := c.doJSON(ctx, Request{Method: http.MethodPost, Path: "/v1/cluster/trust", Write: true, Leader: true, Idempotent: true}, in, &out)
	return out.Trust, err
}

// RemoveMember removes a member and revokes its keys. A node cannot hear
// the outcome of its own removal (its connections are closed when its key is
// revoked), so the request goes to a member other than id: the leader unless
// it is id, else another member, which forwards it to the leader (a leader
// asked to remove itself hands leadership over first). It goes to id only
// when the client reaches no other member, or is pinned to id (At).
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	err := c.doJSON(ctx, Request{Method: http.MethodDelete, Path: "/v1/cluster/members/" + pathSegment(id), Write: true, Leader: true, Idempotent: true, notTo: id}, nil, nil)
	return gone(err)
}

// Backup streams the answering node's state to w (send it to the leader,
// the default, for the latest) and returns its size. progress, if not nil,
// is called with the bytes received so far and the total (-1 unknown).
func (c *Client) Backup(ctx context.Context, w io.Writer, progress func(n, total int64)) (int64, error) {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/v1/backup", Leader: true})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	total, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		total = -1
	}
	var r io.Reader = resp.Body
	if progress != nil {
		r = &progressReader{r: r, total: total, f: progress}
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return n, fmt.Errorf("backup: after %d bytes: %w", n, err)
	}
	return n, nil
}

// Restore replaces the whole cluster's state with a backup of size bytes
// (-1 unknown), sent to the leader. The backup is verified before anything
// changes. An attempt refused before anything changed (another node leads,
// no leader yet) is retried when r is an io.Seeker (it is rewound); after
// an ambiguous failure the error says the outcome is unknown and the
// restore is not repeated: installed once, then writes acknowledged, a
// second install of the same backup would lose them.
func (c *Client) Restore(ctx context.Context, r io.Reader, size int64) error {
	resp, err := c.Do(ctx, Request{Method: http.MethodPost, Path: "/v1/restore", Stream: r, StreamSize: size,
		ContentType: "application/octet-stream", Write: true, Leader: true})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// progressReader reports what it read.
type progressReader struct {
	r     io.Reader
	n     int64
	total int64
	f     func(n, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.f(p.n, p.total)
	return n, err
}

// NodeStatus is one node's status (GET /v1/status, /v1/status/cluster).
type NodeStatus struct {
	NodeID       string         `json:"node_id"`
	APIAddress   string         `json:"api_address,omitempty"`
	RaftAddress  string         `json:"raft_address"`
	State        string         `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string         `json:"leader"`
	Term         uint64         `json:"term"`
	LastIndex    uint64         `json:"last_index"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Ready        bool           `json:"ready"`
	NotReady     string         `json:"not_ready,omitempty"` // why it is not ready
	Failure      string         `json:"failure,omitempty"`   // why it stopped applying (fail-stop)
	Degraded     string         `json:"degraded,omitempty"`  // why it cannot write its Raft log
	Removed      string         `json:"removed,omitempty"`   // why it takes no part: it was removed
	Version      string         `json:"version"`
	Commit       string         `json:"commit,omitempty"`
	Keys         int            `json:"keys"`
	DiskBytes    int64          `json:"disk_bytes"`
	Plugins      []PluginStatus `json:"plugins"`
	Time         time.Time      `json:"time"`
	// Error is set when the member did not answer the node that asked.
	Error string `json:"error,omitempty"`
	// Divergence lists the plugins whose state the node found to differ
	// from another node's at the same index (docs/operations.md, "State
	// divergence").
	Divergence []Divergence `json:"divergence,omitempty"`
	// Writes and Reads count the requests the node answered with success
	// (GET /v1/status only).
	Writes uint64 `json:"writes,omitempty"`
	Reads  uint64 `json:"reads,omitempty"`
}

// Divergence is a state digest of a plugin that differed between this node
// and Peer at Index.
type Divergence struct {
	Plugin     string `json:"plugin"`
	Index      uint64 `json:"index"`
	Peer       string `json:"peer"`
	Digest     string `json:"digest"`
	PeerDigest string `json:"peer_digest"`
}

// PluginStatus is a plugin as one node runs it.
type PluginStatus struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Hash         string `json:"hash"`
	Keys         int    `json:"keys"`
	Digest       string `json:"digest,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
}

// Status returns the answering node's status (use At for a given node);
// digests adds each plugin's state digest (a pass over the node's state).
func (c *Client) Status(ctx context.Context, digests bool) (NodeStatus, error) {
	var s NodeStatus
	err := c.doJSON(ctx, Request{Method: http.MethodGet, Path: "/v1/status", Query: digestsQuery(digests)}, nil, &s)
	return s, err
}

// ClusterStatus returns every member's status, gathered by the answering
// node from each member.
func (c *Client) ClusterStatus(ctx context.Context, digests bool) ([]NodeStatus, error) {
	var out struct {
		Nodes []NodeStatus `json:"nodes"`
	}
	err := c.doJSON(ctx, Request{Method: http.MethodGet, Path: "/v1/status/cluster", Query: digestsQuery(digests)}, nil, &out)
	return out.Nodes, err
}

func digestsQuery(digests bool) url.Values {
	if !digests {
		return nil
	}
	return url.Values{"digests": {"true"}}
}

// gone is the result of a removal: a not_found answer to a retry after an
// attempt whose outcome was unknown means that attempt removed it (removing
// a member from the leader hands leadership over, and the new leader's
// removal closes the old one's connections before it can answer).
func gone(err error) error {
	var ae *Error
	if errors.As(err, &ae) && ae.AfterUnknownOutcome && ae.Code == CodeNotFound {
		return nil
	}
	return err
}

package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/buildinfo"
)

// clusterInfo is the answer of GET /v1/cluster.
type clusterInfo struct {
	Leader       string        `json:"leader"`
	Term         uint64        `json:"term"`
	AppliedIndex uint64        `json:"applied_index"`
	CommitIndex  uint64        `json:"commit_index"`
	NodeID       string        `json:"node_id"`
	Version      string        `json:"version"` // the answering node's build (buildinfo.Info.Version)
	Members      []host.Member `json:"members"`
	// Removed says why the answering node takes no part in the cluster
	// (host.Node.Removed): its Members are its last view, out of date.
	Removed string `json:"removed,omitempty"`
}

// cluster serves GET /v1/cluster: this node's view of the cluster.
func (a *API) cluster(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
	st := a.node.Stats()
	members, err := a.node.Members(ctx)
	if err != nil {
		return err
	}
	if members == nil {
		members = []host.Member{}
	}
	return writeJSON(w, clusterInfo{
		Leader: st.Leader, Term: st.Term, AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex,
		NodeID: st.NodeID, Version: buildinfo.Get().Version, Members: members, Removed: a.node.Removed(),
	})
}

// version serves GET /v1/version: the answering node's build.
func (a *API) version(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, buildinfo.Get())
}

// trustAnswer answers a trust or join: the trust lines the new node needs,
// and the voters it may hear from while it waits to be added
// (host.Node.ExpectLeaders).
type trustAnswer struct {
	Trust  []string `json:"trust"`
	Voters []string `json:"voters,omitempty"`
}

func (a *API) writeTrust(w http.ResponseWriter, lines []string) error {
	if lines == nil {
		lines = []string{}
	}
	return writeJSON(w, trustAnswer{Trust: lines, Voters: a.node.Voters()})
}

// clusterTrust serves POST /v1/cluster/trust {"line": "ssh-ed25519 AAAA… id"}.
func (a *API) clusterTrust(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	buf := getBuffer()
	defer buf.free()
	var err error
	if buf.b, err = a.jsonBody(w, r, buf.b[:0]); err != nil {
		return err
	}
	var req struct {
		Line string `json:"line"`
		ID   string `json:"id"` // optional when the line names the node
	}
	if err := decodeJSON(buf.b, &req); err != nil {
		return err
	}
	if req.Line == "" {
		return badRequest("missing line")
	}
	lines, err := a.node.Trust(ctx, req.ID, req.Line)
	if err != nil {
		return err
	}
	return a.writeTrust(w, lines)
}

// clusterJoin serves POST /v1/cluster/join {"id","address","non_voter","public_key"}.
func (a *API) clusterJoin(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	buf := getBuffer()
	defer buf.free()
	var err error
	if buf.b, err = a.jsonBody(w, r, buf.b[:0]); err != nil {
		return err
	}
	var req host.JoinRequest
	if err := decodeJSON(buf.b, &req); err != nil {
		return err
	}
	if req.NodeID == "" || req.Address == "" {
		return badRequest("id and address are required")
	}
	resp, err := a.node.Join(ctx, req)
	if err != nil {
		return err
	}
	return a.writeTrust(w, resp.Trust)
}

// clusterRemove serves DELETE /v1/cluster/members/{id}.
func (a *API) clusterRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == "" {
		return badRequest("empty member id")
	}
	if err := a.node.Remove(ctx, id); err != nil {
		return err
	}
	writeJSONBytes(w, []byte("{}\n"))
	return nil
}

// seedJoin serves the RaftKV seed's GET /join?peerID=&peerAddress=.
func (a *API) seedJoin(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	id, _, err := queryValue(r.URL.RawQuery, "peerID")
	if err != nil {
		return err
	}
	addr, _, err := queryValue(r.URL.RawQuery, "peerAddress")
	if err != nil {
		return err
	}
	if id == "" || addr == "" {
		return badRequest("peerID and peerAddress are required")
	}
	if _, err := a.node.Join(ctx, host.JoinRequest{NodeID: id, Address: addr}); err != nil {
		return err
	}
	writeText(w, "ok")
	return nil
}

// backup serves GET /v1/backup: the node's snapshot, streamed. A failure
// after the first byte aborts the connection (see writeError).
func (a *API) backup(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
	sw := &startWriter{w: w}
	if _, err := a.node.Backup(ctx, sw); err != nil {
		return err
	}
	sw.start()
	return nil
}

// startWriter sends the success header with the first byte of a stream.
type startWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startWriter) start() {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", "application/octet-stream")
		s.w.WriteHeader(http.StatusOK)
	}
}

func (s *startWriter) Write(p []byte) (int, error) {
	s.start()
	return s.w.Write(p)
}

// restore serves POST /v1/restore: the body is streamed to Node.Restore,
// which spools it to disk and verifies it before anything changes.
func (a *API) restore(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	switch mt, ct := requestMedia(r); mt {
	case mediaOctet, mediaNone:
	default:
		return unsupportedMedia(ct, "application/octet-stream")
	}
	if !a.node.IsLeader() { // before reading a possibly large body
		return fmt.Errorf("%w: restore must be sent to the leader", host.ErrNotLeader)
	}
	body := newTimedBody(w, r.Body)
	if err := a.node.Restore(ctx, body); err != nil {
		if rerr := bodyReadErr(body); rerr != nil {
			return bodyErr(rerr) // the client's fault: a stalled or broken upload
		}
		return err
	}
	writeJSONBytes(w, []byte("{}\n"))
	return nil
}

// healthz serves GET /healthz: 200 while the node applies the log and can
// write it; 503 stopped after a fail-stop, 503 degraded while its log
// cannot be written (it recovers by itself when it can), and 503 degraded,
// naming the plugin, while the last digest check found this node's state
// different from another's (host.Node.Divergences).
func (a *API) healthz(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
	st := a.node.Stats()
	if st.Failure != "" {
		return fmt.Errorf("%w: %s", host.ErrStopped, st.Failure)
	}
	if st.Degraded != "" {
		return &httpError{Status: http.StatusServiceUnavailable, Code: "degraded", Message: st.Degraded}
	}
	if st.DivergenceSummary != "" {
		return &httpError{Status: http.StatusServiceUnavailable, Code: "degraded", Message: st.DivergenceSummary}
	}
	writeText(w, "ok")
	return nil
}

// readyz serves GET /readyz: 200 when the node serves reads that reflect
// the cluster (host.Node.Ready: it knows a leader, heard from it recently
// and has applied its commit index, and has loaded the default plugin).
// Probes are not logged one by one: a change of the answer is, once.
func (a *API) readyz(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
	var err error
	if ready, why := a.node.Ready(); !ready {
		st := a.node.Stats()
		switch {
		case st.Failure != "":
			err = fmt.Errorf("%w: %s", host.ErrStopped, st.Failure)
		case st.Leader == "":
			err = host.ErrNoLeader
		default:
			err = &httpError{Status: http.StatusServiceUnavailable, Code: "not_ready",
				Message: fmt.Sprintf("%s (applied index %d, commit index %d)", why, st.AppliedIndex, st.CommitIndex)}
		}
	}
	state := int32(1)
	if err != nil {
		state = 2
	}
	if old := a.ready.Swap(state); old != state {
		if err != nil {
			a.log.Info("httpapi: /readyz: not ready", "reason", err.Error())
		} else if old != 0 {
			a.log.Info("httpapi: /readyz: ready")
		}
	}
	if err != nil {
		return err
	}
	writeText(w, "ok")
	return nil
}

var _ io.Writer = (*startWriter)(nil)

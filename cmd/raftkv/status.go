package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	kvclient "github.com/raftkv/raftkv/client"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", "[flags]", "Show the node's view of the cluster: its ID, the leader, Raft indexes, readiness and members.\nExits 1 when the node does not answer.", stdout)
	cf := addClientFlags(fs)
	cluster := fs.Bool("cluster", false, "every member's status, gathered by the answering node from each member over the\nnode-to-node transport: ID, API address, version, role, term, commit and applied index, lag behind\nthe leader's commit index, health, keys, data directory size, plugins")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, 0); err != nil {
		return err
	}
	if *cluster {
		return runStatusCluster(ctx, cf, stdout)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	// Every line is about the node asked (the first that answers): no
	// failover to another node when it has no leader or is not ready (its
	// 503 is the answer).
	if c, err = c.answering(ctx); err != nil {
		return err
	}
	a, err := getCluster(ctx, c)
	if err != nil {
		return err
	}
	ready, notReady := probe(ctx, c, "/readyz")
	healthy, unhealthy := probe(ctx, c, "/healthz")
	// What the digest checks found (an older node answers without it).
	var st struct {
		Divergence      []divergence `json:"divergence"`
		LastDigestCheck *struct {
			Index    uint64   `json:"index"`
			Compared []string `json:"compared"`
		} `json:"last_digest_check"`
	}
	c.doJSON(ctx, http.MethodGet, "/v1/status", nil, nil, &st)
	if cf.json {
		if a.Members == nil {
			a.Members = []member{}
		}
		return printJSON(stdout, struct {
			clusterAnswer
			Ready      bool         `json:"ready"`
			Healthy    bool         `json:"healthy"`
			Divergence []divergence `json:"divergence,omitempty"`
		}{a, ready, healthy, st.Divergence})
	}
	leader := a.Leader
	if leader == "" {
		leader = "(none)"
	}
	var ms []string
	for _, m := range a.Members {
		s := m.ID
		if m.Leader {
			s += "*"
		}
		if m.Suffrage == "nonvoter" {
			s += " (non-voter)"
		}
		ms = append(ms, s)
	}
	fmt.Fprintf(stdout, "node:          %s\n", a.NodeID)
	fmt.Fprintf(stdout, "leader:        %s\n", leader)
	fmt.Fprintf(stdout, "term:          %d\n", a.Term)
	fmt.Fprintf(stdout, "commit index:  %d\n", a.CommitIndex)
	fmt.Fprintf(stdout, "applied index: %d\n", a.AppliedIndex)
	fmt.Fprintf(stdout, "healthy:       %s%s\n", yesNo(healthy), unhealthy)
	fmt.Fprintf(stdout, "ready:         %s%s\n", yesNo(ready), notReady)
	fmt.Fprintf(stdout, "members:       %d (%s)\n", len(a.Members), strings.Join(ms, ", "))
	if dc := st.LastDigestCheck; dc != nil {
		fmt.Fprintf(stdout, "digest check:  index %d, compared with %s\n", dc.Index, orDash(strings.Join(dc.Compared, ", ")))
	}
	for _, d := range st.Divergence {
		fmt.Fprintf(stdout, "DIVERGED:      plugin %s at index %d: digest %s here, %s on %s (see docs/operations.md)\n",
			d.Plugin, d.Index, shortDigest(d.Digest), shortDigest(d.PeerDigest), d.Peer)
	}
	return nil
}

// probe reports whether a health endpoint answers 2xx, and otherwise why
// not (" (the reason)"), in one attempt.
func probe(ctx context.Context, c *client, path string) (bool, string) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.api.Do(ctx, kvclient.Request{Method: http.MethodGet, Path: path, Once: true})
	if err != nil {
		return false, " (" + err.Error() + ")"
	}
	resp.Body.Close()
	return true, ""
}

// shortDigest is a digest's first 12 hex digits, "(empty)" for none.
func shortDigest(h string) string {
	switch {
	case h == "":
		return "(empty)"
	case len(h) > 12:
		return h[:12]
	}
	return h
}

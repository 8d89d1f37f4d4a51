package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", "[flags]", "Show the node's view of the cluster: its ID, the leader, Raft indexes, readiness and members.\nExits 1 when the node does not answer.", stdout)
	cf := addClientFlags(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, 0); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	a, err := getCluster(ctx, c)
	if err != nil {
		return err
	}
	ready := probe(ctx, c, "/readyz")
	healthy := probe(ctx, c, "/healthz")
	if cf.json {
		if a.Members == nil {
			a.Members = []member{}
		}
		return printJSON(stdout, struct {
			clusterAnswer
			Ready   bool `json:"ready"`
			Healthy bool `json:"healthy"`
		}{a, ready, healthy})
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
	fmt.Fprintf(stdout, "healthy:       %s\n", yesNo(healthy))
	fmt.Fprintf(stdout, "ready:         %s\n", yesNo(ready))
	fmt.Fprintf(stdout, "members:       %d (%s)\n", len(a.Members), strings.Join(ms, ", "))
	return nil
}

// probe reports whether a health endpoint answers 2xx.
func probe(ctx context.Context, c *client, path string) bool {
	resp, err := c.request(ctx, http.MethodGet, path, nil, nil, "")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
)

// clusterAnswer is the answer of GET /v1/cluster.
type clusterAnswer = kvclient.ClusterInfo

type member = kvclient.Member

func getCluster(ctx context.Context, c *client) (clusterAnswer, error) {
	var a clusterAnswer
	err := c.doJSON(ctx, http.MethodGet, "/v1/cluster", nil, nil, &a)
	return a, err
}

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("members", "[flags]", "List the cluster's members as the node at --addr sees them (the leader pings each one).", stdout)
	cf := addClientFlags(fs)
	_, c, err := parseClient(fs, cf, args, 0, 0)
	if err == nil {
		c, err = c.answering(ctx) // the view of the node asked, not the leader's
	}
	if err != nil {
		return err
	}
	a, err := getCluster(ctx, c)
	if err != nil {
		return err
	}
	if a.Removed != "" {
		fmt.Fprintf(stderr, "raftkv members: warning: %s\nraftkv members: warning: the members below are %s's last view, out of date: ask another member (--addr)\n",
			a.Removed, a.NodeID)
	}
	if cf.json {
		if a.Members == nil {
			a.Members = []member{}
		}
		return printJSON(stdout, a.Members)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAPI\tRAFT ADDRESS\tSUFFRAGE\tLEADER\tREACHABLE\tLAST CONTACT")
	for _, m := range a.Members {
		contact := "-"
		if !m.LastContact.IsZero() {
			contact = time.Since(m.LastContact).Round(time.Millisecond).String() + " ago"
		}
		api := m.APIAddress
		if api == "" {
			api = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, api, m.Address, m.Suffrage, yesNo(m.Leader), yesNo(m.Reachable), contact)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

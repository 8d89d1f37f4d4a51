package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	kvclient "github.com/raftkv/raftkv/client"
)

// nodeStatus is one member in GET /v1/status/cluster, with what the CLI
// computes from the whole answer.
type nodeStatus struct {
	kvclient.NodeStatus
	Lag    uint64 `json:"lag"`    // the leader's commit index - applied index
	Health string `json:"health"` // see health
}

type divergence = kvclient.Divergence

// diverged is "hostile≠n2@123, kv≠n3@130" for a node's divergences.
func diverged(ds []divergence) string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s≠%s@%d", d.Plugin, d.Peer, d.Index))
	}
	return strings.Join(out, ", ")
}

type pluginStatus = kvclient.PluginStatus

// clusterStatus asks any node for every member's status and fills Lag and
// Health.
func clusterStatus(ctx context.Context, c *client, digests bool) ([]nodeStatus, error) {
	var out struct {
		Nodes []nodeStatus `json:"nodes"`
	}
	q := url.Values{}
	if digests {
		q.Set("digests", "true")
	}
	if err := c.doJSON(ctx, http.MethodGet, "/v1/status/cluster", q, nil, &out); err != nil {
		return nil, err
	}
	// The lag is behind the leader's commit index, as the leader says; the
	// highest known when no leader answered.
	var commit uint64
	for _, n := range out.Nodes {
		if n.Error == "" && n.State == "Leader" {
			commit = n.CommitIndex
			break
		}
		commit = max(commit, n.CommitIndex)
	}
	for i := range out.Nodes {
		n := &out.Nodes[i]
		if n.Error == "" && commit > n.AppliedIndex {
			n.Lag = commit - n.AppliedIndex
		}
		n.Health = health(n)
	}
	return out.Nodes, nil
}

// health is "ok" for a node that answers, applies the log, can write it,
// knows a leader and has caught up; otherwise what is wrong (why says more:
// healthDetail).
func health(n *nodeStatus) string {
	switch {
	case n.Error != "":
		return "unreachable"
	case n.Failure != "":
		return "stopped"
	case len(n.Divergence) > 0:
		return "diverged"
	case n.Degraded != "":
		return "degraded"
	case n.Removed != "":
		return "removed"
	case n.Leader == "":
		return "no leader"
	case !n.Ready && (n.NotReady == "" || strings.HasPrefix(n.NotReady, "catching up")):
		return "catching up"
	case !n.Ready:
		return "not ready"
	}
	return "ok"
}

// healthDetail says why a node's health is what it is, "" for ok or when
// its health says it all.
func healthDetail(n *nodeStatus) string {
	switch n.Health {
	case "unreachable":
		return n.Error
	case "stopped":
		return n.Failure
	case "diverged":
		return "state differs from another node's (plugin≠node@index): " + diverged(n.Divergence)
	case "degraded":
		return "cannot write its Raft log: " + n.Degraded
	case "removed":
		return n.Removed
	case "catching up":
		return "applied " + strconv.FormatUint(n.AppliedIndex, 10) + " of " + strconv.FormatUint(n.CommitIndex, 10)
	case "not ready":
		return n.NotReady
	}
	return ""
}

// runStatusCluster prints every member's status as a table (or JSON).
func runStatusCluster(ctx context.Context, cf *clientFlags, stdout io.Writer) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	nodes, err := clusterStatus(ctx, c, false)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, nodes)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAPI ADDRESS\tVERSION\tROLE\tTERM\tCOMMIT\tAPPLIED\tLAG\tHEALTH\tKEYS\tDISK\tPLUGINS")
	for _, n := range nodes {
		if n.Error != "" {
			// The innermost cause ("connection refused"); --json has it all.
			cause := n.Error[strings.LastIndex(n.Error, ": ")+1:]
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s:%s\t-\t-\t-\n", n.NodeID, orDash(n.APIAddress), n.Health, cause)
			continue
		}
		health := n.Health
		switch n.Health {
		case "stopped", "degraded", "removed", "not ready":
			health += ": " + healthDetail(&n)
		case "diverged":
			health += ": " + diverged(n.Divergence)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\n", n.NodeID, orDash(n.APIAddress), n.Version,
			strings.ToLower(n.State), n.Term, n.CommitIndex, n.AppliedIndex, n.Lag, health, n.Keys, formatBytes(n.DiskBytes), plugins(n.Plugins))
	}
	return tw.Flush()
}

// plugins is "kv v1.0.0 3f3928cbfddd, ledger ..." sorted by name.
func plugins(ps []pluginStatus) string {
	var out []string
	for _, p := range ps {
		h := p.Hash
		if len(h) > 12 {
			h = h[:12]
		}
		v := p.Version
		if v == "" {
			v = "-"
		}
		out = append(out, p.Name+" "+v+" "+h)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}

const healthSummary = `Check a node's health: exit 0 when the node at --addr serves and applies the log (GET
/healthz), 1 otherwise. With --ready it must also know a leader and have caught up (GET /readyz).
With --cluster: every member's health as the answering node gathers it (see 'status --cluster');
exit 1 when any member is unreachable, stopped, diverged (its state differs from another
member's: see docs/operations.md), degraded (it cannot write its Raft log), removed, without a
leader, catching up or otherwise not ready.
Docker's HEALTHCHECK runs 'raftkv health' (the image has no shell).`

func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", "[--ready] [--cluster] [flags]", healthSummary, stdout)
	cf := addClientFlags(fs)
	ready := fs.Bool("ready", false, "also require readiness (GET /readyz)")
	cluster := fs.Bool("cluster", false, "every member's health")
	quiet := fs.Bool("quiet", false, "print nothing; only the exit status tells")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, 0); err != nil {
		return err
	}
	out := stdout
	if *quiet {
		out = io.Discard
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if *cluster {
		nodes, err := clusterStatus(ctx, c, false)
		if err != nil {
			return err
		}
		if cf.json {
			if err := printJSON(out, nodes); err != nil {
				return err
			}
		}
		bad := 0
		for _, n := range nodes {
			detail := ""
			if d := healthDetail(&n); d != "" {
				detail = ": " + d
			}
			if n.Health != "ok" {
				bad++
			}
			if !cf.json {
				fmt.Fprintf(out, "%s %s %s%s\n", n.NodeID, orDash(n.APIAddress), n.Health, detail)
			}
		}
		if bad > 0 {
			return fmt.Errorf("%d of %d members unhealthy", bad, len(nodes))
		}
		return nil
	}
	// One node: the one at --addr (the first endpoint), with no failover.
	at, err := c.api.At(c.base)
	if err != nil {
		return err
	}
	if err := at.Healthy(ctx); err != nil {
		return err
	}
	if *ready {
		if err := at.Ready(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, c.base, "ok")
	return nil
}

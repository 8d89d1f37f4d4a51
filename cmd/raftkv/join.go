package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/raftkv/raftkv/host"
)

const joinSummary = `Add the node ID, whose Raft (SSH) transport listens at RAFT_ADDR, to the cluster. Its key must
be trusted first ('raftkv trust', or --key here), and the new node must trust the members
(start it with the trust list in <data-dir>/authorized_keys). 'raftkv serve --join' does all of
this by itself.`

func runJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("join", "ID RAFT_ADDR [flags]", joinSummary, stdout)
	cf := addClientFlags(fs)
	nonVoter := fs.Bool("non-voter", false, "add the node as a non-voting member")
	key := fs.String("key", "", "the node's public key or trust line, to trust it in the same request")
	pos, c, err := parseClient(fs, cf, args, 2, 2)
	if err != nil {
		return err
	}
	var out struct {
		Trust []string `json:"trust"`
	}
	req := host.JoinRequest{NodeID: pos[0], Address: pos[1], NonVoter: *nonVoter, PublicKey: *key}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/join", nil, req, &out); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	_, err = fmt.Fprintf(stdout, "%s (%s) is a member\n", pos[0], pos[1])
	return err
}

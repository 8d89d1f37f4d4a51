package main

import (
	"context"
	"fmt"
	"io"
)

func runRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("remove", "ID [flags]", "Remove the member ID from the cluster and revoke its keys on every node.", stdout)
	cf := addClientFlags(fs)
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	// Through the client package's RemoveMember: it sends the removal to a
	// member other than the one removed (which cannot hear the outcome of
	// its own removal), even when that one leads.
	rctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if err := c.api.RemoveMember(rctx, pos[0]); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"removed": pos[0]})
	}
	_, err = fmt.Fprintf(stdout, "removed %s\n", pos[0])
	return err
}

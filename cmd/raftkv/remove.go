package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

func runRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("remove", "ID [flags]", "Remove the member ID from the cluster and revoke its keys on every node.", stdout)
	cf := addClientFlags(fs)
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	if err := c.doJSON(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(pos[0]), nil, nil, nil); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"removed": pos[0]})
	}
	_, err = fmt.Fprintf(stdout, "removed %s\n", pos[0])
	return err
}

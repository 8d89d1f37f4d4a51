package main

import (
	"context"
	"fmt"
	"io"
)

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("delete", "KEY [flags]", "Delete KEY. Deleting an absent key succeeds and says so.", stdout)
	cf := addClientFlags(fs)
	cas := fs.Int64("cas", -1, "delete only if the key's version is this (-1: unconditionally)")
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var out struct {
		Deleted bool `json:"deleted"`
	}
	if *cas >= 0 {
		out.Deleted, err = c.api.CompareAndDelete(ctx, pos[0], uint64(*cas))
	} else {
		out.Deleted, err = c.api.Delete(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	if out.Deleted {
		_, err = fmt.Fprintln(stdout, "deleted")
	} else {
		_, err = fmt.Fprintln(stdout, "not found, nothing deleted")
	}
	return err
}

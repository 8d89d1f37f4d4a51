package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("delete", "KEY [flags]", "Delete KEY. Deleting an absent key succeeds and says so.", stdout)
	cf := addClientFlags(fs)
	cas := fs.Int64("cas", -1, "delete only if the key's version is this (-1: unconditionally)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 1); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *cas >= 0 {
		q.Set("cas", strconv.FormatInt(*cas, 10))
	}
	var out struct {
		Deleted bool `json:"deleted"`
	}
	if err := c.doJSON(ctx, http.MethodDelete, keyPath(pos[0]), q, nil, &out); err != nil {
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

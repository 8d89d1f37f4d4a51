package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", "KEY [flags]", "Print the value of KEY, followed by a newline (--raw: the bytes only).", stdout)
	cf := addClientFlags(fs)
	consistency := fs.String("consistency", "", "stale, leader or linearizable (default: the node's, leader)")
	raw := fs.Bool("raw", false, "print the value's bytes exactly, without a newline")
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
	if *consistency != "" {
		q.Set("consistency", *consistency)
	}
	resp, err := c.request(ctx, http.MethodGet, keyPath(pos[0]), q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	value, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	version, _ := strconv.ParseUint(resp.Header.Get("X-Raftkv-Version"), 10, 64)
	switch {
	case cf.json:
		return printJSON(stdout, newKVItem([]byte(pos[0]), value, version))
	case *raw:
		_, err = stdout.Write(value)
		return err
	default:
		_, err = stdout.Write(append(value, '\n'))
		return err
	}
}

package main

import (
	"context"
	"fmt"
	"io"
)

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("put", "KEY [VALUE|-] [flags]", "Set KEY to VALUE, read from standard input when VALUE is absent or -.\nA value starting with '-' goes after '--': raftkv put k -- -1", stdout)
	cf := addClientFlags(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 2); err != nil {
		return err
	}
	value, err := valueArg(pos[1:])
	if err != nil {
		return err
	}
	return putKey(ctx, cf, pos[0], value, nil, stdout)
}

// valueArg returns the value argument, or standard input for none or "-".
func valueArg(pos []string) ([]byte, error) {
	if len(pos) == 0 || pos[0] == "-" {
		return io.ReadAll(stdin)
	}
	return []byte(pos[0]), nil
}

// putKey writes a key, conditionally when cas is not nil.
func putKey(ctx context.Context, cf *clientFlags, key string, value []byte, cas *uint64, stdout io.Writer) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var out struct {
		Version uint64 `json:"version"`
	}
	if cas != nil {
		out.Version, err = c.api.CAS(ctx, key, *cas, value)
	} else {
		out.Version, err = c.api.Put(ctx, key, value)
	}
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	_, err = fmt.Fprintf(stdout, "OK, version %d\n", out.Version)
	return err
}

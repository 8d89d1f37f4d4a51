package main

import (
	"context"
	"io"

	kvclient "github.com/raftkv/raftkv/client"
)

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", "KEY [flags]", "Print the value of KEY, followed by a newline (--raw: the bytes only).", stdout)
	cf := addClientFlags(fs)
	consistency := fs.String("consistency", "", "stale, leader or linearizable (default: the node's, leader)")
	raw := fs.Bool("raw", false, "print the value's bytes exactly, without a newline")
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	var opts []kvclient.CallOption
	if *consistency != "" {
		opts = append(opts, kvclient.WithConsistency(kvclient.Consistency(*consistency)))
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	item, err := c.api.Get(ctx, pos[0], opts...)
	if err != nil {
		return err
	}
	value, version := item.Value, item.Version
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

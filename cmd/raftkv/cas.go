package main

import (
	"context"
	"io"
	"strconv"
)

func runCAS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cas", "KEY VERSION [VALUE|-] [flags]", "Set KEY to VALUE only if its version is VERSION; 0 sets it only if it is absent.\nA conflict fails with the key's actual version. VALUE is read from standard input when absent or -.", stdout)
	cf := addClientFlags(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 2, 3); err != nil {
		return err
	}
	version, err := strconv.ParseUint(pos[1], 10, 64)
	if err != nil {
		return usagef("VERSION %q is not a non-negative integer", pos[1])
	}
	value, err := valueArg(pos[2:])
	if err != nil {
		return err
	}
	return putKey(ctx, cf, pos[0], value, &version, stdout)
}

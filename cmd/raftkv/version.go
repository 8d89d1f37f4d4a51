package main

import (
	"context"
	"fmt"
	"io"

	"github.com/raftkv/raftkv/internal/buildinfo"
)

const versionSummary = `Print raftkv's version, the commit and time it was built (stamped by 'make build' and
examples/docker/build.sh, see scripts/ldflags.sh; a plain 'go build' falls back to what the Go
toolchain recorded), the Go version and the platform. 'raftkv --version' is the same.`

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "[--json]", versionSummary, stdout)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, 0); err != nil {
		return err
	}
	bi := buildinfo.Get()
	if *asJSON {
		return printJSON(stdout, bi)
	}
	_, err = fmt.Fprintln(stdout, bi.String())
	return err
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

const trustSummary = `Authorise node keys on every member (through the Raft log) and print the cluster's trust
list, one authorized_keys line per node. A line is "ssh-ed25519 AAAA… <node-id>", as printed by
'raftkv key'; --file reads lines from a file (- for standard input). The printed list is what a
new node needs in <data-dir>/authorized_keys before 'raftkv join'.`

func runTrust(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("trust", "LINE... | --file F [flags]", trustSummary, stdout)
	cf := addClientFlags(fs)
	file := fs.String("file", "", "read trust lines from this file (- for standard input)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	lines := pos
	if *file != "" {
		var data []byte
		if *file == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		return usagef("no trust line given")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out struct {
		Trust []string `json:"trust"`
	}
	for _, l := range lines {
		if err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/trust", nil, map[string]string{"line": l}, &out); err != nil {
			return fmt.Errorf("%.40s…: %w", l, err)
		}
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	for _, l := range out.Trust {
		fmt.Fprintln(stdout, l)
	}
	return nil
}

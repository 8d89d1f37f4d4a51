package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
)

const restoreSummary = `Replace the whole cluster's state with a backup made by 'raftkv backup' (FILE, or standard input
for -). The node at --addr must be the leader: the backup is verified completely before anything
changes, then installed on every member. Progress goes to standard error.`

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", "FILE|- [flags]", restoreSummary, stdout)
	cf := addClientFlags(fs)
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 1); err != nil {
		return err
	}
	cf.timeout = 0
	c, err := cf.client()
	if err != nil {
		return err
	}
	var in io.Reader = stdin
	total := int64(-1)
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			total = st.Size()
		}
		in = f
	}
	progressOut := stderr
	if *quiet {
		progressOut = io.Discard
	}
	p := newProgress(progressOut, "restore", total)
	body := p.reader(in)
	if total >= 0 {
		// A known length lets the server reject an oversized backup at once.
		body = sizedReader{io.LimitReader(body, total), total}
	}
	req := func() error {
		resp, err := c.request(ctx, http.MethodPost, "/v1/restore", nil, body, "application/octet-stream")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := req(); err != nil {
		p.done(" sent, failed")
		return err
	}
	p.done(" restored")
	if cf.json {
		return printJSON(stdout, map[string]any{"restored": pos[0]})
	}
	_, err = fmt.Fprintln(stdout, "restored")
	return err
}

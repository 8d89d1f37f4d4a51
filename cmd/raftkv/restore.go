package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	kvclient "github.com/raftkv/raftkv/client"
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
	// Three steps, each reported: the upload, the leader's verification and
	// installation (the answer), then every member installing it.
	progressOut = &lockedWriter{w: progressOut}
	ph := newPhases(progressOut, "restore", 3)
	ph.step("upload to the leader")
	p := newProgress(progressOut, "restore", total)
	uploaded := false
	// A file is sent again from its start if the node it reached first
	// turns out not to be the leader (the client package rewinds it).
	r := kvclient.Request{Method: http.MethodPost, Path: "/v1/restore", Stream: in, StreamSize: total,
		// Not Idempotent: a restore installed, then writes acknowledged, then
		// the same backup installed again would lose those writes. After an
		// ambiguous failure the outcome is reported, not repeated.
		ContentType: "application/octet-stream", Write: true, Leader: true,
		Progress: func(sent, _ int64) {
			p.set(sent)
			if total >= 0 && sent >= total && !uploaded {
				uploaded = true
				ph.step("verify and install on the leader")
			}
		}}
	req := func() error {
		resp, err := c.api.Do(ctx, r)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := req(); err != nil {
		p.done(" sent, failed")
		ph.end("failed")
		return err
	}
	p.done(" restored")
	ph.end("")
	ph.step("install on every member")
	if err := installedEverywhere(ctx, c, progressOut, "restore"); err != nil {
		ph.end("not confirmed: " + err.Error())
	} else {
		ph.end("")
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"restored": pos[0]})
	}
	_, err = fmt.Fprintln(stdout, "restored")
	return err
}

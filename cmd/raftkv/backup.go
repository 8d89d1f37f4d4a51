package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

const backupSummary = `Write a consistent backup of the cluster's state (every plugin's state, the active plugin
modules and the trust list, with checksums) to FILE, or to standard output for -. Progress goes
to standard error. Ask the leader for the latest state. Restore it with 'raftkv restore'.`

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "inspect" {
		return runBackupInspect(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("backup", "FILE|- [flags]", backupSummary, stdout)
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
	resp, err := c.request(ctx, http.MethodGet, "/v1/backup", nil, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	out, path := stdout, pos[0]
	var tmp *os.File
	if path != "-" {
		// Write next to the target and rename, so a failed backup never
		// leaves a truncated file under the final name.
		if tmp, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*"); err != nil {
			return err
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		out = tmp
	}
	progressOut := stderr
	if *quiet {
		progressOut = io.Discard
	}
	total, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if total == 0 {
		total = -1
	}
	p := newProgress(progressOut, "backup", total)
	n, err := io.Copy(p.writer(out), resp.Body)
	if err != nil {
		return fmt.Errorf("after %d bytes: %w", n, err)
	}
	if n == 0 {
		return errors.New("the node sent an empty backup")
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
		tmp = nil
		p.done(" written to " + path)
	} else {
		p.done(" written")
	}
	if cf.json && path != "-" {
		return printJSON(stdout, map[string]any{"file": path, "bytes": n})
	}
	return nil
}

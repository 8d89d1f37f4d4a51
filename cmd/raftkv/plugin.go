package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	kvclient "github.com/raftkv/raftkv/client"
)

const pluginSummary = `Manage the cluster's WebAssembly plugins:

  raftkv plugin deploy NAME FILE.wasm        deploy a new plugin (through the Raft log)
  raftkv plugin deploy NAME FILE.wasm --upgrade HASH
                                             upgrade the plugin that runs the module HASH
  raftkv plugin list [--all]                 list the active plugins (and the kept states of removed ones)
  raftkv plugin show NAME                    a plugin's module, limits and counters
  raftkv plugin limits NAME [--fuel N ...]   change a plugin's replicated limits
  raftkv plugin reset kv                     deploy the built-in kv module again
  raftkv plugin quarantine NAME              refuse a plugin's commands (recovers a stopped cluster)
  raftkv plugin remove NAME [--drop-state]   deactivate a plugin (and delete its state, now or later)
  raftkv plugin digest NAME                  hash of the plugin's state on the node at --addr
  raftkv plugin command NAME JSON|-          send a command (a write) to a plugin
  raftkv plugin query NAME JSON|-            send a query (a read) to a plugin
  raftkv plugin run FILE.wasm [SCRIPT|-]     run a module locally on commands and queries, no cluster
  raftkv plugin init NAME [DIR]              scaffold a Go plugin project`

func runPlugin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, "Usage: raftkv plugin deploy|list|show|limits|reset|quarantine|remove|digest|command|query|run|init ...\n\n%s\n\nRun 'raftkv plugin SUBCOMMAND -h' for its flags.\n", pluginSummary)
		if len(args) == 0 {
			return usagef("missing plugin subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "deploy":
		return pluginDeploy(ctx, args, stdout, stderr)
	case "list":
		return pluginList(ctx, args, stdout)
	case "show":
		return pluginShow(ctx, args, stdout)
	case "limits":
		return pluginSetLimits(ctx, args, stdout)
	case "reset":
		return pluginReset(ctx, args, stdout)
	case "quarantine":
		return pluginQuarantine(ctx, args, stdout)
	case "remove":
		return pluginRemove(ctx, args, stdout)
	case "digest":
		return pluginDigest(ctx, args, stdout)
	case "command", "query":
		return pluginCall(ctx, sub, args, stdout)
	case "run":
		return pluginRun(ctx, args, stdout, stderr)
	case "init":
		return pluginInit(args, stdout)
	}
	return usagef("unknown plugin subcommand %q (want deploy, list, show, limits, reset, quarantine, remove, digest, command, query, run or init)", sub)
}

// keptState is one entry of GET /v1/plugins?all=true's kept_states.
type keptState struct {
	Name  string `json:"name"`
	Keys  int    `json:"keys"`
	Bytes int64  `json:"bytes"`
}

func pluginPath(name string) string { return "/v1/plugins/" + url.PathEscape(name) }

func pluginDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plugin deploy", "NAME FILE.wasm [--upgrade HASH] [--fuel N] [--memory SIZE] ... [flags]", "Deploy FILE.wasm as the new plugin NAME, or with --upgrade upgrade it (its state is kept and its\nmigrate entry point runs once). The leader validates the module first; an invalid one is refused\nwith the reason. Limits not given keep the plugin's current values (the defaults, for a new plugin).", stdout)
	cf := addClientFlags(fs)
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	upgrade := fs.String("upgrade", "", "upgrade the plugin, which must run the module of this hash or hash prefix (raftkv plugin list shows it; * for any)")
	force := fs.Bool("force", false, "upgrade even to a module whose raftkv_info name differs from the running module's")
	trusted := fs.Bool("trusted", false, "run the module without fuel (you vouch that it ends: a loop in it stops every node until raftkv plugin quarantine); given at each deploy, not kept by an upgrade")
	lf := addLimitFlags(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 2, 2); err != nil {
		return err
	}
	wasm, err := os.ReadFile(pos[1])
	if err != nil {
		return err
	}
	q, err := lf.query()
	if err != nil {
		return err
	}
	if *force {
		q.Set("force", "true")
	}
	if *trusted {
		q.Set("trusted", "true")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	progressOut := stderr
	if *quiet {
		progressOut = io.Discard
	}
	info, err := deployWithPhases(ctx, c, pos[0], wasm, q, ifMatchHeader(fullHash(ctx, c, pos[0], *upgrade)), progressOut) // phases.go
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	_, err = fmt.Fprintf(stdout, "deployed %s: version %s, hash %s, active since index %d\n", info.Name, orDash(info.Version), shortHash(info.Hash), info.ActiveSince)
	return err
}

func pluginList(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin list", "[--all] [--consistency LEVEL] [flags]", "List the active plugins. With --all, also the state kept by plugins removed without --drop-state\n(raftkv plugin remove NAME --drop-state deletes it).", stdout)
	cf := addClientFlags(fs)
	all := fs.Bool("all", false, "also list the kept states of removed plugins (keys and bytes)")
	consistency := fs.String("consistency", "stale", "stale (the node's table), leader or linearizable (asked of the leader)")
	_, c, err := parseClient(fs, cf, args, 0, 0)
	if err != nil {
		return err
	}
	q := url.Values{"consistency": {*consistency}}
	if *all {
		q.Set("all", "true")
	}
	var out struct {
		Plugins    []kvclient.PluginInfo `json:"plugins"`
		KeptStates *[]keptState          `json:"kept_states,omitempty"`
	}
	if err := c.doJSON(ctx, http.MethodGet, "/v1/plugins", q, nil, &out); err != nil {
		return err
	}
	if cf.json {
		if out.Plugins == nil {
			out.Plugins = []kvclient.PluginInfo{}
		}
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tABI\tHASH\tSIZE\tKEYS\tSINCE\tDESCRIPTION")
	for _, p := range out.Plugins {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n", p.Name, orDash(p.Version), p.ABIVersion, shortHash(p.Hash), p.Size, p.Keys, p.ActiveSince, p.Description)
	}
	if err := tw.Flush(); err != nil || out.KeptStates == nil {
		return err
	}
	if len(*out.KeptStates) == 0 {
		_, err := fmt.Fprintln(stdout, "\nno kept state of a removed plugin")
		return err
	}
	fmt.Fprintln(stdout, "\nKept state of removed plugins (raftkv plugin remove NAME --drop-state deletes it):")
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKEYS\tBYTES")
	for _, k := range *out.KeptStates {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", k.Name, k.Keys, k.Bytes)
	}
	return tw.Flush()
}

func pluginRemove(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin remove", "NAME [--drop-state] [flags]", "Deactivate the plugin NAME on every node. Its state is kept unless --drop-state is given (plugin list\n--all shows kept states; a plugin deployed again under NAME finds it); --drop-state on a plugin\nalready removed deletes its kept state. Both go through the Raft log. The default plugin kv cannot\nbe removed.", stdout)
	cf := addClientFlags(fs)
	drop := fs.Bool("drop-state", false, "delete the plugin's state too (or, for a removed plugin, its kept state)")
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	// Through the client package's RemovePlugin: retried after an ambiguous
	// failure, and a retry that finds nothing left to remove succeeds
	// (docs/cli.md).
	rctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if err := c.api.RemovePlugin(rctx, pos[0], *drop); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"removed": pos[0], "state_dropped": *drop, "state_kept": !*drop})
	}
	msg := "removed " + pos[0] + " (any state it had is deleted)"
	if !*drop {
		msg = fmt.Sprintf("removed %s; its state is kept (raftkv plugin list --all shows it; raftkv plugin remove %s --drop-state deletes it)", pos[0], pos[0])
	}
	_, err = fmt.Fprintln(stdout, msg)
	return err
}

// digestAnswer is the answer of GET /v1/plugins/{name}/digest.
type digestAnswer struct {
	Plugin       string `json:"plugin"`
	Digest       string `json:"digest"`
	AppliedIndex uint64 `json:"applied_index"`
	Keys         int    `json:"keys"`
}

func pluginDigest(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin digest", "NAME [flags]", "Print a hash of the plugin's state on the node at --addr and the index it was taken at.\nReplicas at the same applied index have the same digest.", stdout)
	cf := addClientFlags(fs)
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	var d digestAnswer
	if err := c.doJSON(ctx, http.MethodGet, pluginPath(pos[0])+"/digest", nil, nil, &d); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, d)
	}
	_, err = fmt.Fprintf(stdout, "%s  %s  keys=%d applied_index=%d\n", d.Digest, d.Plugin, d.Keys, d.AppliedIndex)
	return err
}

func pluginCall(ctx context.Context, kind string, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin "+kind, "NAME JSON|- [flags]", "Send a "+kind+" to the plugin NAME as JSON (converted to the equivalent MsgPack map) and print\nthe plugin's result as JSON.", stdout)
	cf := addClientFlags(fs)
	var consistency *string
	if kind == "query" {
		consistency = fs.String("consistency", "", "stale, leader or linearizable (default: the node's, leader)")
	}
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 2); err != nil {
		return err
	}
	body, err := valueArg(pos[1:])
	if err != nil {
		return err
	}
	if !json.Valid(body) {
		return usagef("the %s is not valid JSON", kind)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if consistency != nil && *consistency != "" {
		q.Set("consistency", *consistency)
	}
	endpoint := map[string]string{"command": "/commands", "query": "/queries"}[kind]
	resp, err := c.request(ctx, http.MethodPost, pluginPath(pos[0])+endpoint, q, bytes.NewReader(body), "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out json.RawMessage
	if err := decodeBody(resp, &out); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(out))
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

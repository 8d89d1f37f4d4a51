package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	kvclient "github.com/raftkv/raftkv/client"
)

// limitFlags are the flags of a plugin's replicated limits (deploy and
// plugin limits): only those given are sent; the others keep the plugin's
// current values (the defaults, for a new plugin).
type limitFlags struct {
	fs     *flagSet
	values map[string]*string // limit name → flag value
}

// limitFlagNames maps flag names to the API's limit names.
var limitFlagNames = []struct{ flag, limit, help string }{
	{"fuel", "apply_fuel", "fuel of one command (log entry), in units of about one wasm instruction"},
	{"query-fuel", "query_fuel", "fuel of one query"},
	{"load-fuel", "load_fuel", "fuel of each of the module's initialiser, raftkv_info and raftkv_migrate"},
	{"memory", "memory_pages", "memory cap of the plugin's instances: a size (64MiB, 2GiB; a multiple of 64KiB) or a number of 64 KiB pages"},
	{"max-write-bytes", "max_write_bytes", "bytes one command may write (keys and values)"},
	{"max-keys", "max_namespace_keys", "keys the plugin's state may hold"},
	{"max-state-bytes", "max_namespace_bytes", "bytes (keys and values) the plugin's state may hold"},
	{"max-log-bytes", "max_log_bytes", "log output of one command or call; the excess is dropped"},
}

func addLimitFlags(fs *flagSet) *limitFlags {
	lf := &limitFlags{fs: fs, values: map[string]*string{}}
	for _, f := range limitFlagNames {
		lf.values[f.limit] = fs.String(f.flag, "", f.help)
	}
	return lf
}

// query returns the limits given, as the API's query parameters.
func (lf *limitFlags) query() (url.Values, error) {
	q := url.Values{}
	for _, f := range limitFlagNames {
		v := strings.TrimSpace(*lf.values[f.limit])
		if v == "" {
			continue
		}
		if f.limit == "memory_pages" {
			pages, err := parsePages(v)
			if err != nil {
				return nil, usagef("--memory %q: %v", v, err)
			}
			v = strconv.FormatUint(pages, 10)
		} else if _, err := strconv.ParseUint(strings.ReplaceAll(v, "_", ""), 10, 64); err != nil {
			return nil, usagef("--%s %q: want a non-negative integer", f.flag, v)
		} else {
			v = strings.ReplaceAll(v, "_", "")
		}
		q.Set(f.limit, v)
	}
	return q, nil
}

// parsePages reads a memory size (KiB, MiB, GiB suffixes) as 64 KiB pages,
// or a plain number as pages.
func parsePages(s string) (uint64, error) {
	units := []struct {
		suffix string
		bytes  uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("want a number before %s", u.suffix)
			}
			b := n * u.bytes
			if b%(64<<10) != 0 {
				return 0, fmt.Errorf("not a multiple of 64KiB")
			}
			return b / (64 << 10), nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("want a size such as 64MiB or a number of 64 KiB pages")
	}
	return n, nil
}

// pluginLimits is a plugin's replicated limits, as GET /v1/plugins/{name}
// shows them.
type pluginLimits struct {
	ApplyFuel         uint64 `json:"apply_fuel"`
	QueryFuel         uint64 `json:"query_fuel"`
	LoadFuel          uint64 `json:"load_fuel"`
	MemoryPages       uint32 `json:"memory_pages"`
	MaxWriteBytes     uint64 `json:"max_write_bytes"`
	MaxNamespaceKeys  uint64 `json:"max_namespace_keys"`
	MaxNamespaceBytes uint64 `json:"max_namespace_bytes"`
	MaxLogBytes       uint64 `json:"max_log_bytes"`
	Trusted           bool   `json:"trusted"`
}

// pluginDetail is GET /v1/plugins/{name}.
type pluginDetail struct {
	kvclient.PluginInfo
	InfoName    string            `json:"info_name,omitempty"`
	Limits      pluginLimits      `json:"limits"`
	Counters    map[string]uint64 `json:"counters"`
	Quarantined bool              `json:"quarantined,omitempty"`
}

func printPluginDetail(w io.Writer, p pluginDetail) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\n", p.Name)
	fmt.Fprintf(tw, "module\t%s (raftkv_info name %s, version %s)\n", p.Hash, orDash(p.InfoName), orDash(p.Version))
	fmt.Fprintf(tw, "active since\tindex %d\n", p.ActiveSince)
	if p.Quarantined {
		fmt.Fprintf(tw, "QUARANTINED\tits commands and queries are refused until a module is deployed again\n")
	}
	l := p.Limits
	if l.Trusted {
		fmt.Fprintf(tw, "fuel\tnone: TRUSTED (deployed with --trusted; a loop stops every node until raftkv plugin quarantine)\n")
	} else {
		fmt.Fprintf(tw, "fuel\tcommand %d, query %d, load %d\n", l.ApplyFuel, l.QueryFuel, l.LoadFuel)
	}
	fmt.Fprintf(tw, "memory\t%d pages (%s)\n", l.MemoryPages, formatBytes(int64(l.MemoryPages)*64<<10))
	fmt.Fprintf(tw, "quotas\twrites %d B/command, state %d keys and %d B, log %d B/command\n", l.MaxWriteBytes, l.MaxNamespaceKeys, l.MaxNamespaceBytes, l.MaxLogBytes)
	fmt.Fprintf(tw, "keys\t%d\n", p.Keys)
	var cs []string
	for _, k := range []string{"out_of_fuel", "quota_exceeded", "log_bytes_dropped", "log_lines_rate_limited", "max_fuel_used"} {
		cs = append(cs, fmt.Sprintf("%s=%d", k, p.Counters[k]))
	}
	fmt.Fprintf(tw, "counters (this node)\t%s\n", strings.Join(cs, " "))
	return tw.Flush()
}

func pluginShow(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin show", "NAME [flags]", "Show a plugin: its module's hash and raftkv_info, activation index, replicated limits and the\ncounters of what the limits cut on the node at --addr.", stdout)
	cf := addClientFlags(fs)
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	var p pluginDetail
	if err := c.doJSON(ctx, http.MethodGet, pluginPath(pos[0]), nil, nil, &p); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, p)
	}
	return printPluginDetail(stdout, p)
}

func pluginSetLimits(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin limits", "NAME [--fuel N] [--memory SIZE] ... [flags]", "Change a plugin's replicated limits through the Raft log (every node reloads its module with\nthem at the same index; its state is kept, no migration runs). Limits not given are kept.\nWithout limit flags, print them.", stdout)
	cf := addClientFlags(fs)
	lf := addLimitFlags(fs)
	ifHash := fs.String("if-hash", "", "change them only if the plugin runs the module of this hash")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 1); err != nil {
		return err
	}
	q, err := lf.query()
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var p pluginDetail
	if len(q) == 0 {
		err = c.doJSON(ctx, http.MethodGet, pluginPath(pos[0]), nil, nil, &p)
	} else {
		err = c.doJSONHeader(ctx, http.MethodPut, pluginPath(pos[0])+"/limits", q, ifMatchHeader(fullHash(ctx, c, pos[0], *ifHash)), &p)
	}
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, p)
	}
	return printPluginDetail(stdout, p)
}

func pluginReset(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin reset", "kv [flags]", "Deploy the kv module built into the node as the plugin kv again, with the default limits,\nwhatever module kv runs now (its state is kept): the way back from a broken upgrade of kv.", stdout)
	cf := addClientFlags(fs)
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	var p pluginDetail
	if err := c.doJSON(ctx, http.MethodPost, pluginPath(pos[0])+"/reset", nil, nil, &p); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, p)
	}
	_, err = fmt.Fprintf(stdout, "reset %s to the built-in module %s\n", p.Name, shortHash(p.Hash))
	return err
}

// fullHash returns the hash of the module the plugin name runs if hash is
// a prefix of it of at least 8 characters (plugin list shows 12, deploy
// prints 12), so that --upgrade and --if-hash take what the CLI shows. Any
// other hash ("*", a full one, one the plugin does not run) is returned as
// given, for the leader to check: the upgrade stays conditional on the
// module running now.
func fullHash(ctx context.Context, c *client, name, hash string) string {
	h := strings.ToLower(strings.TrimPrefix(hash, "sha256:"))
	if len(h) < 8 || len(h) >= 64 {
		return hash
	}
	var p pluginDetail
	if err := c.doJSON(ctx, http.MethodGet, pluginPath(name), url.Values{"consistency": {"linearizable"}}, nil, &p); err != nil {
		return hash
	}
	if full := strings.TrimPrefix(p.Hash, "sha256:"); strings.HasPrefix(full, h) {
		return full
	}
	return hash
}

// ifMatchHeader is the If-Match header naming a module hash, nil for "".
func ifMatchHeader(hash string) http.Header {
	if hash == "" {
		return nil
	}
	return http.Header{"If-Match": {strconv.Quote(strings.TrimPrefix(hash, "sha256:"))}}
}

// doJSONHeader sends a bodiless write with headers and decodes the JSON
// answer into out.
func (c *client) doJSONHeader(ctx context.Context, method, path string, query url.Values, h http.Header, out any) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.api.Do(ctx, kvclient.Request{Method: method, Path: path, Query: query, Header: h, Write: true, Leader: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeBody(resp, out)
}

func pluginQuarantine(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin quarantine", "NAME [--reason TEXT] [flags]", "Quarantine a plugin through the Raft log: its commands and queries are refused from that entry on,\nuntil a module is deployed for it again (its state is kept). The recovery of a cluster whose every\nvoter stopped applying the log at an entry of that plugin (fail-stop): they refuse that entry and\napply the log again. See docs/operations.md.", stdout)
	cf := addClientFlags(fs)
	reason := fs.String("reason", "", "why, for the nodes' logs")
	pos, c, err := parseClient(fs, cf, args, 1, 1)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *reason != "" {
		q.Set("reason", *reason)
	}
	if err := c.doJSON(ctx, http.MethodPost, pluginPath(pos[0])+"/quarantine", q, nil, nil); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"quarantined": pos[0]})
	}
	_, err = fmt.Fprintf(stdout, "quarantined %s: its commands and queries are refused until a module is deployed for it again\n", pos[0])
	return err
}

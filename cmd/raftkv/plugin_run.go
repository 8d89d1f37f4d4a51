package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/httpapi"
	"github.com/raftkv/raftkv/plugintest"
)

const pluginRunSummary = `Run a plugin module locally, without a cluster: on the real runtime (fuel, memory cap, per-entry
atomicity) against an in-memory state, which is thrown away at the end. SCRIPT (a file, or - or
nothing for standard input) holds one request per line:

  {"op":"push","payload":"x"}    a command (JSON, converted to MsgPack as the HTTP API does)
  command JSON                   the same
  query JSON                     a query
  upgrade FILE.wasm              deploy a new version of the module (its migration runs)
  # comment, or a blank line     skipped

Each request prints one JSON line: a command {"index":N,"result":R} or {"index":N,"error":{"code","message"}},
a query {"query":R} or {"error":…}, an upgrade {"index":N,"upgraded":{"version","hash"}} or {"error":…}.
Results are rendered from MsgPack to JSON as the HTTP API renders them. Entries are numbered 1, 2, …
and stamped one second apart from 2026-01-01T00:00:00Z. With --backup the run starts from a backup
file's state of the plugin --name (and its module, if FILE.wasm is "-": else FILE.wasm replaces it as
an upgrade), numbered after the backup's last entry. Plugin log output goes to standard error. The
exit status is 1 if a line could not be read as a request.`

func pluginRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plugin run", "FILE.wasm|- [SCRIPT|-] [flags]", pluginRunSummary, stdout)
	backup := fs.String("backup", "", "start from this backup file's state of plugin --name")
	name := fs.String("name", "", "the plugin's name in the backup (default: the name the module reports)")
	pages := fs.Uint("memory-pages", 512, "the module's memory cap, in 64 KiB pages")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 2); err != nil {
		return err
	}
	var wasm []byte
	if pos[0] != "-" {
		if wasm, err = os.ReadFile(pos[0]); err != nil {
			return err
		}
	} else if *backup == "" {
		return usagef(`FILE.wasm "-" (the backup's module) needs --backup`)
	}
	var script io.Reader = os.Stdin
	if len(pos) == 2 && pos[1] != "-" {
		f, err := os.Open(pos[1])
		if err != nil {
			return err
		}
		defer f.Close()
		script = f
	}
	opts := plugintest.Options{
		Name:        *name,
		MemoryPages: uint32(*pages),
		Logger:      slog.New(slog.NewTextHandler(stderr, nil)),
	}
	var upgrade []byte
	if *backup != "" {
		if err := fromBackup(*backup, &opts, &wasm, &upgrade); err != nil {
			return err
		}
	}
	p, err := plugintest.Load(wasm, opts)
	if err != nil {
		return err
	}
	defer p.Close()
	r := &runner{p: p, out: bufio.NewWriter(stdout)}
	defer r.out.Flush()
	if upgrade != nil {
		r.upgrade(upgrade)
	}
	return r.script(ctx, script)
}

// fromBackup sets opts to start from the backup's state of the plugin. When
// wasm is nil the backup's module runs; else wasm becomes an upgrade of it.
func fromBackup(path string, opts *plugintest.Options, wasm, upgrade *[]byte) error {
	if opts.Name == "" {
		if *wasm == nil {
			return usagef("--backup with the backup's module needs --name")
		}
		p, err := plugintest.Load(*wasm, plugintest.Options{MemoryPages: opts.MemoryPages})
		if err != nil {
			return err
		}
		opts.Name = p.Info().Name
		p.Close()
		if opts.Name == "" {
			return usagef("the module reports no name: give --name")
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := host.ReadBackupPlugin(f, opts.Name)
	if err != nil {
		return err
	}
	opts.State, opts.Index = b.Records, b.AppliedIndex
	if b.Time > 0 {
		opts.Start = time.Unix(0, b.Time).Add(time.Second).UTC()
	}
	switch {
	case *wasm == nil && b.Wasm == nil:
		return fmt.Errorf("the backup has state for %q but no active module: give FILE.wasm", opts.Name)
	case *wasm == nil:
		*wasm = b.Wasm
	case b.Wasm != nil:
		*wasm, *upgrade = b.Wasm, *wasm
	}
	return nil
}

type runner struct {
	p      *plugintest.Plugin
	out    *bufio.Writer
	failed bool
}

func (r *runner) script(ctx context.Context, in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), abi.MaxCommandSize*2)
	line := 0
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		verb, rest := "command", text
		if v, arg, ok := strings.Cut(text, " "); ok && (v == "command" || v == "query" || v == "upgrade") {
			verb, rest = v, strings.TrimSpace(arg)
		}
		if verb == "upgrade" {
			wasm, err := os.ReadFile(rest)
			if err != nil {
				r.badLine(line, err)
				continue
			}
			r.upgrade(wasm)
			continue
		}
		data, err := httpapi.JSONToMsgPack([]byte(rest))
		if err != nil {
			r.badLine(line, err)
			continue
		}
		if verb == "query" {
			r.result("", 0, r.p.Query(data))
		} else {
			r.result("index", r.p.Index()+1, r.p.Command(data))
		}
		if err := r.out.Flush(); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if r.failed {
		return errors.New("some lines were not requests (see the errors above)")
	}
	return nil
}

func (r *runner) badLine(line int, err error) {
	r.failed = true
	r.write(map[string]any{"line": line, "error": map[string]string{"code": "bad_request", "message": err.Error()}})
}

func (r *runner) upgrade(wasm []byte) {
	res, err := r.p.Upgrade(wasm)
	switch {
	case err != nil:
		r.failed = true
		r.write(map[string]any{"error": map[string]string{"code": "invalid_module", "message": err.Error()}})
	case !res.OK():
		r.write(map[string]any{"index": r.p.Index(), "error": map[string]string{"code": res.Code.String(), "message": string(res.Data)}})
	default:
		r.write(map[string]any{"index": r.p.Index(), "upgraded": map[string]string{"version": r.p.Info().Version, "hash": r.p.Hash()}})
	}
}

// result prints a command's or query's result.
func (r *runner) result(key string, index uint64, res abi.Result) {
	var b bytes.Buffer
	b.WriteByte('{')
	if key != "" {
		fmt.Fprintf(&b, "%q:%d,", key, index)
	}
	if res.OK() {
		if key == "" {
			b.WriteString(`"query":`)
		} else {
			b.WriteString(`"result":`)
		}
		b.Write(httpapi.MsgPackToJSON(res.Data))
	} else {
		e, _ := json.Marshal(map[string]string{"code": res.Code.String(), "message": string(res.Data)})
		b.WriteString(`"error":`)
		b.Write(e)
	}
	b.WriteString("}\n")
	r.out.Write(b.Bytes())
}

func (r *runner) write(v any) {
	b, _ := json.Marshal(v)
	r.out.Write(append(b, '\n'))
	r.out.Flush()
}

package fsm

// TestEntries runs the scripts in testdata/entries/*.txt: what each kind of
// log entry does to the FSM, as the result it gives and the state it leaves.
// Each script starts from an empty FSM (as New makes it, on a plugin runtime
// configured as a node's: 512 memory pages, kv.wasm trusted by the runtime)
// and hands it batches of entries as Raft would, at consecutive indexes from
// 1, each stamped with its index as the leader's time. The plugins are the
// real kv.wasm (plugins/kv/kvwasm) and the test plugins slow
// (host/testdata/slow) and hostile (host/plugin/testdata/hostile), built once
// per test binary. Nothing depends on the wall clock: every limit a script
// reaches is fuel or a configured bound, never the call time limit.
//
// To regenerate the expected output after a deliberate change:
//
//	go test ./internal/fsm -run TestEntries -rewrite
//
// and read the diff: it is the change of what the log's entries mean, which
// every node of a cluster must agree on.
//
// Directives (github.com/cockroachdb/datadriven):
//
//	apply     the input is one batch (one ApplyBatch), an entry per line;
//	          the output has a line per entry: "<index> <verb> <plugin>:
//	          <result>" (see showResult).
//	query P   each input line is a query payload for plugin P (see
//	          payload); a line per query.
//	state     the FSM afterwards: the applied index, a fail-stop, the
//	          active plugins (module, deploy index, limits, quarantine), the
//	          kept states, the trust list, the members' addresses.
//	keys P    the keys of plugin P's namespace: "key = value @version".
//
// Entries (one line each; words separated by spaces, "..." is a Go-quoted
// string, x"..." bytes in hex):
//
//	command P [key=K] PAYLOAD   a command for plugin P, with idempotency key
//	                            K; PAYLOAD is a kv command in words (SET k v,
//	                            CAS k v VERSION, DELETE k [VERSION], GET k),
//	                            or "text" / x"hex" sent as is
//	deploy P MODULE [create] [force] [if_hash=MODULE] [LIMIT=N...] [trusted]
//	                            a deploy of a module the test knows (kv, slow,
//	                            slow2, hostile, garbage) with the default
//	                            limits changed as given (apply_fuel=,
//	                            memory_pages=, max_write_bytes= ...)
//	set-limits P [if_hash=MODULE] [LIMIT=N...] [trusted]
//	remove P [drop_state]
//	quarantine P
//	trust-add NODE [key="authorized_keys line"]  (default: NODE's test key,
//	                            derived from its name)
//	trust-remove NODE
//	addresses NODE [api=URL] [mgmt=HOST:PORT]
//	digest-check
//	raw PAYLOAD                 the log entry's bytes, not an envelope
//	envelope KIND P PAYLOAD     an envelope of any kind number
//
// Module hashes, in results, errors and the state, are written hash(NAME),
// NAME being the module the script deployed: the test plugins' bytes depend
// on the Go toolchain that builds them, their names do not.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/hashicorp/raft"
	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/mptext"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// scriptModules returns the modules scripts deploy, by name.
func scriptModules(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"kv":      kvwasm.Module,
		"slow":    slowWasm(t, "1"), // wasmbuild caches the builds per process
		"slow2":   slowWasm(t, "2"),
		"hostile": hostileWasm(t),
		// Begins as a module does (magic and version), then is not one.
		"garbage": []byte("\x00asm\x01\x00\x00\x00 not a module"),
	}
}

func TestEntries(t *testing.T) {
	modules := scriptModules(t)
	names := map[string]string{} // hash → module name
	for name, wasm := range modules {
		names[plugin.HashOf(wasm)] = name
	}
	datadriven.Walk(t, "testdata/entries", func(t *testing.T, path string) {
		s := &script{t: t, modules: modules, names: names}
		s.f = s.newFSM()
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			s.t, s.td = t, td
			var out strings.Builder
			switch td.Cmd {
			case "apply":
				var envs []Envelope
				var logs []*raft.Log
				for _, line := range inputLines(td.Input) {
					s.index++
					data, e := s.entry(line)
					envs = append(envs, e)
					logs = append(logs, &raft.Log{Index: s.index, Term: 1, Type: raft.LogCommand, Data: data})
				}
				for i, r := range results(s.f.ApplyBatch(logs)) {
					fmt.Fprintf(&out, "%d %s: %s\n", logs[i].Index, describe(envs[i]), s.showResult(r))
				}
			case "query":
				if len(td.CmdArgs) != 1 {
					td.Fatalf(t, "query PLUGIN")
				}
				for _, line := range inputLines(td.Input) {
					toks := s.tokens(line)
					res, err := s.f.Query(context.Background(), td.CmdArgs[0].Key, s.payload(toks))
					out.WriteString(s.showResult(&Result{Res: res, Err: err}) + "\n")
				}
			case "state":
				out.WriteString(s.state())
			case "keys":
				if len(td.CmdArgs) != 1 {
					td.Fatalf(t, "keys PLUGIN")
				}
				out.WriteString(s.keys(td.CmdArgs[0].Key))
			default:
				td.Fatalf(t, "unknown directive %q", td.Cmd)
			}
			return out.String()
		})
	})
}

// script is the FSM a script drives and what the test knows of its modules.
type script struct {
	t       *testing.T
	td      *datadriven.TestData
	f       *FSM
	index   uint64
	modules map[string][]byte
	names   map[string]string
}

// newFSM returns an FSM on a runtime configured as a node's (DefaultConfig,
// kv.wasm trusted as host.Node trusts its default plugin), with a call time
// limit no script comes near.
func (s *script) newFSM() *FSM {
	t := s.t
	ctx := context.Background()
	cfg := plugin.DefaultConfig()
	cfg.CallTimeout = time.Minute
	cfg.CacheDir = filepath.Join(os.TempDir(), "raftkv-test-wasm-cache") // shared with the other tests
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Trusted = map[string]bool{plugin.HashOf(kvwasm.Module): true}
	rt, err := plugin.NewRuntime(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	f := New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Runtime: rt, Trust: &trust.Trust{}, QueryInstances: 1})
	t.Cleanup(f.Close) // before rt.Close
	return f
}

func inputLines(input string) []string {
	var out []string
	for _, l := range strings.Split(input, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// tokens splits a line into words; a word may be or end in a Go-quoted
// string ("a b", x"00ff", key="a b"), kept quoted.
func (s *script) tokens(line string) []string {
	var out []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		end := 0
		for end < len(line) && line[end] != ' ' {
			if line[end] == '"' {
				q, err := strconv.QuotedPrefix(line[end:])
				if err != nil {
					s.td.Fatalf(s.t, "%s: %v", line, err)
				}
				end += len(q)
				continue
			}
			end++
		}
		out = append(out, line[:end])
		line = line[end:]
	}
	return out
}

// bytesOf reads a "..." or x"..." word.
func (s *script) bytesOf(tok string) []byte {
	hexa := strings.HasPrefix(tok, `x"`)
	str, err := strconv.Unquote(strings.TrimPrefix(tok, "x"))
	if err != nil {
		s.td.Fatalf(s.t, "%s: not a quoted string: %v", tok, err)
	}
	if !hexa {
		return []byte(str)
	}
	b, err := hex.DecodeString(str)
	if err != nil {
		s.td.Fatalf(s.t, "%s: %v", tok, err)
	}
	return b
}

// word reads a word, quoted or not.
func (s *script) word(tok string) string {
	if strings.HasPrefix(tok, `"`) || strings.HasPrefix(tok, `x"`) {
		return string(s.bytesOf(tok))
	}
	return tok
}

// payload encodes a command's or query's words: "text" or x"hex" as is,
// else a kv command.
func (s *script) payload(toks []string) []byte {
	if len(toks) == 0 {
		return nil
	}
	if strings.HasPrefix(toks[0], `"`) || strings.HasPrefix(toks[0], `x"`) {
		if len(toks) != 1 {
			s.td.Fatalf(s.t, "%q: one quoted payload expected", toks)
		}
		return s.bytesOf(toks[0])
	}
	op, ok := kvstore.ParseOp(toks[0])
	args := make([]string, len(toks)-1)
	for i, tok := range toks[1:] {
		args[i] = s.word(tok)
	}
	version := func(i int) uint64 {
		v, err := strconv.ParseUint(args[i], 10, 64)
		if err != nil {
			s.td.Fatalf(s.t, "%q: version %q: %v", toks, args[i], err)
		}
		return v
	}
	var c kvstore.Command
	switch {
	case ok && op == kvstore.OpSet && len(args) == 2:
		c = kvstore.Command{Op: op, Key: []byte(args[0]), Value: []byte(args[1])}
	case ok && op == kvstore.OpCAS && len(args) == 3:
		c = kvstore.Command{Op: op, Key: []byte(args[0]), Value: []byte(args[1]), Version: version(2), HasVersion: true}
	case ok && op == kvstore.OpDelete && len(args) == 1:
		c = kvstore.Command{Op: op, Key: []byte(args[0])}
	case ok && op == kvstore.OpDelete && len(args) == 2:
		c = kvstore.Command{Op: op, Key: []byte(args[0]), Version: version(1), HasVersion: true}
	case ok && op == kvstore.OpGet && len(args) == 1:
		c = kvstore.Command{Op: op, Key: []byte(args[0])}
	default:
		s.td.Fatalf(s.t, "%q: not a kv command (SET k v, CAS k v VERSION, DELETE k [VERSION], GET k) nor a quoted payload", toks)
	}
	return c.AppendMsgpack(nil)
}

// options reads key=value words (a bare word is key=true).
func (s *script) options(toks []string, allowed ...string) map[string]string {
	opts := map[string]string{}
	for _, tok := range toks {
		k, v, found := strings.Cut(tok, "=")
		if !found {
			v = "true"
		}
		if !slices.Contains(allowed, k) && !isLimit(k) {
			s.td.Fatalf(s.t, "unknown option %q (want one of %q or a limit)", k, allowed)
		}
		opts[k] = s.word(v)
	}
	return opts
}

func isLimit(name string) bool {
	_, ok := limitFields(plugin.DefaultLimits())[name]
	return ok
}

// limitFields returns the limits by their MsgPack (and JSON) names.
func limitFields(l plugin.Limits) map[string]any {
	b, _ := json.Marshal(l)
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // 2000000, not 2e+06
	var m map[string]any
	_ = d.Decode(&m)
	return m
}

// limits returns the default limits changed by the options that name one.
func (s *script) limits(opts map[string]string) plugin.Limits {
	m := limitFields(plugin.DefaultLimits())
	for k, v := range opts {
		if _, ok := m[k]; !ok {
			continue
		}
		if k == "trusted" {
			m[k] = v == "true"
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.td.Fatalf(s.t, "%s=%s: %v", k, v, err)
		}
		m[k] = n
	}
	b, _ := json.Marshal(m)
	var l plugin.Limits
	if err := json.Unmarshal(b, &l); err != nil {
		s.td.Fatalf(s.t, "limits %v: %v", opts, err)
	}
	return l
}

// module returns a module the test knows, by name.
func (s *script) module(name string) []byte {
	b, ok := s.modules[name]
	if !ok {
		s.td.Fatalf(s.t, "unknown module %q", name)
	}
	return b
}

// hashOpt returns the hash of the module an if_hash option names ("*" and
// other words that name no module are passed as they are).
func (s *script) hashOpt(v string) string {
	if b, ok := s.modules[v]; ok {
		return plugin.HashOf(b)
	}
	return v
}

func (s *script) marshal(v any) []byte {
	b, err := abi.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// testKey returns node's test SSH key as an authorized_keys line: derived
// from its name, so the same in every run.
func testKey(node string) string {
	seed := sha256.Sum256([]byte("raftkv test key " + node))
	key, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed[:]).Public())
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// entry returns the log entry's bytes a line describes, and its envelope
// (zero for a raw entry).
func (s *script) entry(line string) ([]byte, Envelope) {
	toks := s.tokens(line)
	need := func(n int, usage string) {
		if len(toks) < n {
			s.td.Fatalf(s.t, "%s: want %s", line, usage)
		}
	}
	var e Envelope
	switch toks[0] {
	case "raw":
		need(2, "raw PAYLOAD")
		data := s.payload(toks[1:])
		e, _ := decodeEnvelope(data) // named in the output as it decodes, if it does
		return data, e
	case "command":
		need(3, "command PLUGIN [key=K] PAYLOAD")
		e = Envelope{Kind: KindCommand, Plugin: s.word(toks[1])}
		rest := toks[2:]
		if k, ok := strings.CutPrefix(rest[0], "key="); ok {
			e.Key, rest = s.word(k), rest[1:]
		}
		e.Payload = s.payload(rest)
	case "deploy":
		need(3, "deploy PLUGIN MODULE [options]")
		opts := s.options(toks[3:], "create", "force", "if_hash")
		spec := DeploySpec{Wasm: s.module(toks[2]), Limits: s.limits(opts), Create: opts["create"] == "true",
			IfHash: s.hashOpt(opts["if_hash"]), Force: opts["force"] == "true"}
		e = Envelope{Kind: KindDeploy, Plugin: toks[1], Payload: spec.Encode()}
	case "set-limits":
		need(2, "set-limits PLUGIN [options]")
		opts := s.options(toks[2:], "if_hash")
		spec := SetLimitsSpec{Limits: s.limits(opts), IfHash: s.hashOpt(opts["if_hash"])}
		e = Envelope{Kind: KindSetLimits, Plugin: toks[1], Payload: s.marshal(&spec)}
	case "remove":
		need(2, "remove PLUGIN [drop_state]")
		opts := s.options(toks[2:], "drop_state")
		e = Envelope{Kind: KindRemovePlugin, Plugin: toks[1], Payload: s.marshal(&RemovePlugin{DropState: opts["drop_state"] == "true"})}
	case "quarantine":
		need(2, "quarantine PLUGIN")
		e = Envelope{Kind: KindQuarantine, Plugin: toks[1]}
	case "trust-add", "trust-remove":
		need(2, toks[0]+" NODE")
		opts := s.options(toks[2:], "key")
		tc := TrustChange{NodeID: s.word(toks[1]), Key: testKey(s.word(toks[1]))}
		if k, ok := opts["key"]; ok {
			tc.Key = k
			if !strings.Contains(k, " ") {
				tc.Key = testKey(k) // key=NODE: that node's test key
			}
		}
		e = Envelope{Kind: KindTrustAdd, Payload: s.marshal(&tc)}
		if toks[0] == "trust-remove" {
			e = Envelope{Kind: KindTrustRemove, Payload: s.marshal(&TrustChange{NodeID: s.word(toks[1])})}
		}
	case "addresses":
		need(2, "addresses NODE [api=URL] [mgmt=HOST:PORT]")
		opts := s.options(toks[2:], "api", "mgmt")
		e = Envelope{Kind: KindAddresses, Payload: s.marshal(&MemberAddresses{NodeID: toks[1], API: opts["api"], Mgmt: opts["mgmt"]})}
	case "digest-check":
		e = Envelope{Kind: KindDigestCheck}
	case "envelope":
		need(3, "envelope KIND PLUGIN [PAYLOAD]")
		k, err := strconv.ParseUint(toks[1], 10, 8)
		if err != nil {
			s.td.Fatalf(s.t, "%s: kind: %v", line, err)
		}
		e = Envelope{Kind: Kind(k), Plugin: s.word(toks[2]), Payload: s.payload(toks[3:])}
	default:
		s.td.Fatalf(s.t, "%s: unknown entry %q", line, toks[0])
	}
	e.Time = int64(s.index)
	data, err := e.Encode()
	if err != nil {
		s.t.Fatal(err)
	}
	return data, e
}

// describe names an entry in the output: its verb and plugin.
func describe(e Envelope) string {
	verb := map[Kind]string{
		KindCommand: "command", KindDeploy: "deploy", KindRemovePlugin: "remove", KindTrustAdd: "trust-add",
		KindTrustRemove: "trust-remove", KindSetLimits: "set-limits", KindQuarantine: "quarantine",
		KindAddresses: "addresses", KindDigestCheck: "digest-check",
	}[e.Kind]
	switch {
	case e.Kind == 0 && e.Plugin == "":
		return "raw" // not an envelope
	case verb == "":
		return fmt.Sprintf("kind %d %s", e.Kind, e.Plugin)
	case e.Plugin == "":
		return verb
	}
	return verb + " " + e.Plugin
}

// sentinels are the package's errors, the most specific first.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrStopped", ErrStopped}, {"ErrQuarantined", ErrQuarantined}, {"ErrUnknownPlugin", ErrUnknownPlugin},
	{"ErrNotFound", ErrNotFound}, {"ErrPrecondition", ErrPrecondition}, {"ErrConflict", ErrConflict},
	{"ErrTimeout", ErrTimeout}, {"ErrCorruptSnapshot", ErrCorruptSnapshot}, {"ErrInvalid", ErrInvalid},
}

// showResult renders a result: "error <Sentinel>: <message>" for a
// host-level failure, "<code>: <message>" for the plugin's error, "ok" and
// the data for a success (see showData).
func (s *script) showResult(r *Result) string {
	if r.Err != nil {
		name := "(no sentinel)"
		for _, sn := range sentinels {
			if errors.Is(r.Err, sn.err) {
				name = sn.name
				break
			}
		}
		return "error " + name + ": " + s.hashes(r.Err.Error())
	}
	if !r.Res.OK() {
		return r.Res.Code.String() + ": " + s.hashes(firstLine(string(r.Res.Data)))
	}
	if len(r.Res.Data) == 0 {
		return "ok"
	}
	return "ok " + s.showData(r.Res.Data)
}

// firstLine cuts a plugin's message at its first line: a trap's message
// goes on with the guest's stack, which depends on the toolchain.
func firstLine(msg string) string {
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return msg[:i] + " …"
	}
	return msg
}

// showData renders a result's data: a MsgPack map or array in the notation
// of plugins/kv/kvstore's TestRules ({"version": 3}, b"..." for bin), a
// module's hash as hash(NAME), anything else Go-quoted.
func (s *script) showData(b []byte) string {
	if name, ok := s.names[string(b)]; ok {
		return "hash(" + name + ")"
	}
	if t := mp.NewReader(b).Peek(); t == mp.TypeMap || t == mp.TypeArray {
		if text, err := mptext.Format(b); err == nil {
			return text
		}
	}
	return strconv.Quote(string(b))
}

// hashes replaces the hashes of known modules in text by hash(NAME).
func (s *script) hashes(text string) string {
	for h, name := range s.names {
		text = strings.ReplaceAll(text, h, "hash("+name+")")
	}
	return text
}

// showLimits renders limits as the changes from the default limits.
func showLimits(l plugin.Limits) string {
	def, got := limitFields(plugin.DefaultLimits()), limitFields(l)
	var diff []string
	for k, v := range got {
		if fmt.Sprint(def[k]) != fmt.Sprint(v) {
			diff = append(diff, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if len(diff) == 0 {
		return "default"
	}
	slices.Sort(diff)
	return strings.Join(diff, " ")
}

func (s *script) state() string {
	var b strings.Builder
	fmt.Fprintf(&b, "applied %d\n", s.f.Applied())
	if err := s.f.Stopped(); err != nil {
		fmt.Fprintf(&b, "stopped: %s\n", s.hashes(err.Error()))
	}
	for _, p := range s.f.PluginInfos() {
		name, ok := s.names[p.Hash]
		if !ok {
			name = p.Hash[:12]
		}
		fmt.Fprintf(&b, "plugin %s: hash(%s) since %d, %d keys, limits %s", p.Name, name, p.ActiveSince, p.Keys, showLimits(p.Limits))
		if p.Quarantined {
			b.WriteString(", quarantined")
		}
		b.WriteString("\n")
	}
	for _, k := range s.f.KeptStates() {
		fmt.Fprintf(&b, "kept state %s: %d keys\n", k.Name, k.Keys)
	}
	for _, e := range s.f.trust.Entries() {
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.Key)))
		for i := range 10 { // the test keys of n0 … n9 by name
			if node := fmt.Sprint("n", i); line == testKey(node) {
				line = "key(" + node + ")"
			}
		}
		fmt.Fprintf(&b, "trust %s %s\n", e.NodeID, line)
	}
	if r := s.f.trust.Revoked(); len(r) > 0 {
		fmt.Fprintf(&b, "revoked %s\n", strings.Join(r, " "))
	}
	addrs := s.f.Addresses()
	for _, id := range slices.Sorted(maps.Keys(addrs)) {
		fmt.Fprintf(&b, "addresses %s: api=%s mgmt=%s\n", id, addrs[id].API, addrs[id].Mgmt)
	}
	return b.String()
}

func (s *script) keys(name string) string {
	view, _ := s.f.View()
	ns, ok := view.Namespace(name)
	if !ok || ns.Len() == 0 {
		return "(none)\n"
	}
	var b strings.Builder
	ns.Scan(nil, nil, 0, func(k, v []byte, version uint64) bool {
		fmt.Fprintf(&b, "%q = %s @%d\n", k, s.showData(v), version)
		return true
	})
	return b.String()
}

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/plugintest"
)

func buildExample(t *testing.T, pkg string) string {
	t.Helper()
	wasm, err := plugintest.Build("../..", pkg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeScript(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPluginRun: a module runs locally on a script of commands, queries and
// an upgrade, each answered as the HTTP API would (MsgPack rendered as JSON),
// with entries numbered for the caller.
func TestPluginRun(t *testing.T) {
	v1, v2 := buildExample(t, "./examples/queue"), buildExample(t, "./examples/queue/v2")
	script := writeScript(t,
		"# a queue, upgraded",
		`{"op":"push","payload":"a"}`,
		`command {"op":"push","payload":"b"}`,
		``,
		`{"op":"push"}`,
		`query {"op":"len"}`,
		`{"op": not json`,
		"upgrade "+v2,
		`{"op":"pop","lease_ms":5000}`,
		`query {"op":"len"}`,
		`{"op":"ack","id":7}`,
	)
	r := cli("plugin", "run", v1, script)
	want := []string{
		`{"index":1,"result":{"id":1}}`,
		`{"index":2,"result":{"id":2}}`,
		`{"index":3,"error":{"code":"bad_request","message":"payload must be 1 to 65536 bytes, not 0"}}`,
		`{"query":{"queued":2}}`,
		`{"error":{"code":"bad_request","message":`,
		`{"index":4,"upgraded":{"hash":"`,
		`{"index":5,"result":{"attempts":1,"id":1,"lease_until":1767225609000,"payload":"a","pushed":1767225600000}}`, // sdk.Marshal sorts map keys
		`{"query":{"leased":1,"queued":1}}`, // map keys sorted: the same bytes on every node,
		`{"index":6,"error":{"code":"not_found","message":"job 7 is not leased"}}`,
	}
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(got) != len(want) {
		t.Fatalf("exit %d, %d lines, want %d:\n%s\nstderr: %s", r.code, len(got), len(want), r.stdout, r.stderr)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, got[i], want[i])
		}
	}
	if !strings.Contains(got[4], `"line":7`) || r.code != exitError {
		t.Errorf("the bad line: %s, exit %d", got[4], r.code)
	}

	// Standard input, and a module the host refuses.
	if r := cli("plugin", "run", script+".missing"); r.code == 0 {
		t.Error("a missing module was accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	os.WriteFile(bad, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	if r := cli("plugin", "run", bad, script); r.code == 0 || !strings.Contains(r.stderr, "raftkv_abi_v1") {
		t.Errorf("an invalid module: exit %d, %s", r.code, r.stderr)
	}
}

// TestPluginRunBackup: a run starts from a backup's state of a plugin (here
// the default kv plugin, with its module from the backup), after the
// backup's last index, and changes nothing in the file.
func TestPluginRunBackup(t *testing.T) {
	n := startInProcess(t)
	addr := "--addr=" + n.URL
	mustCLI(t, "put", "a", "from-the-cluster", addr)
	file := filepath.Join(t.TempDir(), "backup.bin")
	mustCLI(t, "backup", file, addr, "--quiet")
	before, _ := os.ReadFile(file)
	script := writeScript(t,
		`query {"op":"GET","key":"a"}`,
		`{"op":"SET","key":"b","value":"local"}`,
		`query {"op":"LIST","prefix":""}`,
	)
	out := mustCLI(t, "plugin", "run", "-", script, "--backup", file, "--name", "kv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"from-the-cluster"`) || !strings.Contains(lines[2], `"local"`) {
		t.Fatalf("output:\n%s", out)
	}
	var set struct{ Index uint64 }
	json.Unmarshal([]byte(lines[1]), &set)
	if set.Index < 2 {
		t.Errorf("the local entry has index %d, not after the backup's", set.Index)
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Error("plugin run changed the backup file")
	}
	if r := cli("plugin", "run", "-", script, "--backup", file, "--name", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "no plugin") {
		t.Errorf("an absent plugin: exit %d %s", r.code, r.stderr)
	}
}

// TestPluginInit: the scaffold is a project whose native and wasm tests pass
// as generated, against this checkout.
func TestPluginInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "notes")
	mustCLI(t, "plugin", "init", "notes", dir, "--raftkv", "../..")
	if r := cli("plugin", "init", "notes", dir, "--raftkv", "../.."); r.code == 0 {
		t.Error("init over an existing project succeeded")
	}
	if r := cli("plugin", "init", "Bad Name", t.TempDir()); r.code != exitUsage {
		t.Errorf("a bad name: exit %d", r.code)
	}
	// -e: offline, tidy cannot fetch what the tests of the dependencies
	// import (testify); vet and test below fail on anything the plugin needs.
	goIn := func(sub string, args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = filepath.Join(dir, sub)
		cmd.Env = append(os.Environ(), "GOPROXY=off") // offline: go.sum comes from the checkout
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in the scaffold's %q: %v\n%s", strings.Join(args, " "), sub, err, out)
		}
		return string(out)
	}
	for _, sub := range []string{".", "wasmtest"} {
		goIn(sub, "mod", "tidy", "-e")
		goIn(sub, "vet", "./...")
		goIn(sub, "test", "-count=1", "./...")
	}
	// The plugin's own module graph is the SDK's: no host dependencies
	// (-e: offline, the modules only msgpack's tests need are not in the
	// module cache).
	for _, m := range strings.Fields(goIn(".", "list", "-m", "-e", "-f", "{{.Path}}", "all")) {
		if strings.Contains(m, "wazero") || strings.Contains(m, "hashicorp") || strings.Contains(m, "x/crypto") || m == "github.com/raftkv/raftkv" {
			t.Errorf("the plugin's go.mod pulls in %s", m)
		}
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if abs, _ := filepath.Abs("../.."); !strings.Contains(string(readme), "# notes") || !strings.Contains(string(readme), "They point at `"+abs+"`") {
		t.Errorf("README.md:\n%s", readme)
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "module example.com/notes") || !strings.Contains(string(gomod), "github.com/raftkv/raftkv/plugins/sdk => /") {
		t.Errorf("go.mod:\n%s", gomod)
	}
}

// TestValidateBeforeTheLog: a command that a plugin's raftkv_validate
// refuses (here the typed SDK's Router: an unknown op, a field of the wrong
// type) is answered 400 by the leader and never reaches the Raft log; a good
// one is applied.
func TestValidateBeforeTheLog(t *testing.T) {
	wasm := buildExample(t, "./examples/queue")
	n := startInProcess(t)
	addr := "--addr=" + n.URL
	mustCLI(t, "plugin", "deploy", "queue", wasm, addr, "--quiet", "--timeout", "3m") // compiling is slow on a loaded machine
	// The queue's commands that reached the log, by result code: every
	// command in the log is applied, and counted (a count, not the commit
	// index, which the node's own entries also move).
	applied := func() map[string]int {
		r, err := http.Get(n.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		body, _ := io.ReadAll(r.Body)
		out := map[string]int{}
		re := regexp.MustCompile(`(?m)^raftkv_plugin_commands_total\{code="([^"]*)",plugin="queue"\} (\d+)$`)
		for _, m := range re.FindAllStringSubmatch(string(body), -1) {
			out[m[1]], _ = strconv.Atoi(m[2])
		}
		return out
	}
	for _, bad := range []string{`{"op":"nope"}`, `{"op":"push","payload":7}`, `[1,2]`, `{"op":"len"}`} {
		r := cli("plugin", "command", "queue", bad, addr)
		if r.code == 0 || !strings.Contains(r.stderr, "bad_request") {
			t.Errorf("%s: exit %d, %s %s", bad, r.code, r.stdout, r.stderr)
		}
	}
	if got := applied(); len(got) != 0 {
		t.Errorf("refused commands reached the log: queue commands applied %v", got)
	}
	if out := mustCLI(t, "plugin", "command", "queue", `{"op":"push","payload":"x"}`, addr); !strings.Contains(out, `"id"`) {
		t.Errorf("a good command: %s", out)
	}
	if got := applied(); len(got) != 1 || got["ok"] != 1 {
		t.Errorf("a good command: queue commands applied %v, want map[ok:1]", got)
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// TestCLI runs every client subcommand in-process against a real node
// started by this package's serve code.
func TestCLI(t *testing.T) {
	n := startInProcess(t)
	addr := "--addr=" + n.URL
	failWith := func(t *testing.T, code int, want string, args ...string) {
		t.Helper()
		r := cli(append(args, addr)...)
		if r.code != code || !strings.Contains(r.stderr, want) {
			t.Fatalf("raftkv %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, code, want)
		}
	}

	t.Run("put-get", func(t *testing.T) {
		if out := mustCLI(t, "put", "a/b c", "hello world", addr); !strings.HasPrefix(out, "OK, version ") {
			t.Fatalf("put: %q", out)
		}
		if out := mustCLI(t, "get", "a/b c", addr); out != "hello world\n" {
			t.Fatalf("get: %q", out)
		}
		if out := mustCLI(t, "get", addr, "--raw", "a/b c"); out != "hello world" {
			t.Fatalf("get --raw: %q", out)
		}
		var item kvItem
		for _, c := range []string{"stale", "leader", "linearizable"} {
			if err := json.Unmarshal([]byte(mustCLI(t, "get", "a/b c", "--json", "--consistency", c, addr)), &item); err != nil {
				t.Fatal(err)
			}
			if item.Key != "a/b c" || item.Value != "hello world" || item.Version == 0 {
				t.Fatalf("get --json --consistency %s: %+v", c, item)
			}
		}
		// A value starting with '-' after "--", a value from standard input.
		mustCLI(t, "put", addr, "neg", "--", "-1")
		if out := mustCLI(t, "get", "neg", addr); out != "-1\n" {
			t.Fatalf("get neg: %q", out)
		}
		stdin = strings.NewReader("from stdin")
		defer func() { stdin = os.Stdin }()
		mustCLI(t, "put", "in", addr)
		if out := mustCLI(t, "get", "in", addr); out != "from stdin\n" {
			t.Fatalf("get in: %q", out)
		}
		failWith(t, 1, "not_found", "get", "absent")
		failWith(t, 2, "--limit must be 0 (all) or positive", "list", "--limit", "-5")
		failWith(t, 1, "unknown consistency", "get", "a/b c", "--consistency", "bogus")
	})

	t.Run("cas-delete", func(t *testing.T) {
		var v struct{ Version uint64 }
		json.Unmarshal([]byte(mustCLI(t, "cas", "c", "0", "first", "--json", addr)), &v)
		if v.Version == 0 {
			t.Fatal("cas 0 on an absent key gave no version")
		}
		failWith(t, 1, "conflict", "cas", "c", "0", "again")
		failWith(t, 1, "conflict", "cas", "c", "999999", "again")
		mustCLI(t, "cas", "c", jsonNum(v.Version), "second", addr)
		if out := mustCLI(t, "get", "c", addr); out != "second\n" {
			t.Fatalf("after cas: %q", out)
		}
		failWith(t, 1, "conflict", "delete", "c", "--cas", "1")
		if out := mustCLI(t, "delete", "c", addr); out != "deleted\n" {
			t.Fatalf("delete: %q", out)
		}
		if out := mustCLI(t, "delete", "c", addr); !strings.Contains(out, "not found") {
			t.Fatalf("second delete: %q", out)
		}
	})

	t.Run("list", func(t *testing.T) {
		mustCLI(t, "txn", addr, "set", "p/1", "one", "set", "p/2", "two", "set", "p/3", "three", "set", "q/1", "other")
		out := mustCLI(t, "list", "--prefix", "p/", "--keys-only", addr)
		if out != "p/1\np/2\np/3\n" {
			t.Fatalf("list --prefix p/ --keys-only: %q", out)
		}
		var all listAnswer
		json.Unmarshal([]byte(mustCLI(t, "list", "--prefix", "p/", "--page-size", "1", "--json", addr)), &all)
		if len(all.Items) != 3 || all.Items[2].Key != "p/3" || all.Items[2].Value != "three" || all.Next != "" {
			t.Fatalf("list paged by 1: %+v", all)
		}
		all = listAnswer{}
		json.Unmarshal([]byte(mustCLI(t, "list", "--prefix", "p/", "--limit", "2", "--json", addr)), &all)
		if len(all.Items) != 2 || all.Next != "p/3" {
			t.Fatalf("list --limit 2: %+v", all)
		}
		out = mustCLI(t, "list", "--start", "p/2", "--end", "q/", addr)
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "p/2 ") || !strings.HasSuffix(lines[1], " three") {
			t.Fatalf("list --start p/2 --end q/: %q", out)
		}
	})

	t.Run("txn", func(t *testing.T) {
		out := mustCLI(t, "txn", addr, "set", "t/a", "1", "cas", "t/b", "0", "2", "delete", "p/1")
		if strings.Count(out, "\n") != 3 || !strings.Contains(out, "ops[1] CAS t/b") {
			t.Fatalf("txn: %q", out)
		}
		// All or nothing: the failing CAS undoes the SET before it.
		failWith(t, 1, "ops[1]", "txn", "set", "t/c", "x", "cas", "t/a", "0", "y")
		failWith(t, 1, "not_found", "get", "t/c")
		f := filepath.Join(t.TempDir(), "ops.json")
		os.WriteFile(f, []byte(`{"ops":[{"op":"SET","key":"t/d","value":"4"},{"op":"DELETE","key":"t/a"}]}`), 0o600)
		var res struct{ Results []json.RawMessage }
		json.Unmarshal([]byte(mustCLI(t, "txn", "--file", f, "--json", addr)), &res)
		if len(res.Results) != 2 {
			t.Fatalf("txn --file: %+v", res)
		}
		if out := mustCLI(t, "get", "t/d", addr); out != "4\n" {
			t.Fatalf("after txn --file: %q", out)
		}
		r := cli("txn", "set", "only-key", addr)
		if r.code != exitUsage {
			t.Fatalf("txn with a missing argument: exit %d", r.code)
		}
		// Words that are not UTF-8 are sent as the exact bytes (base64), not
		// as JSON strings with U+FFFD in their place: the SET wrote the key
		// "t/\ufffd", the DELETE and the CAS missed the key (attack round 6).
		bin, val := "t/\xff\xfe", "v\xfe"
		mustCLI(t, "put", bin, "old", addr)
		mustCLI(t, "txn", addr, "delete", bin, "set", "t/x", val)
		failWith(t, 1, "not_found", "get", bin)
		if out := mustCLI(t, "get", "t/x", addr); out != val+"\n" {
			t.Fatalf("after txn set t/x %q: get %q", val, out)
		}
		mustCLI(t, "txn", addr, "cas", bin, "0", val)
		if out := mustCLI(t, "get", bin, addr); out != val+"\n" {
			t.Fatalf("after txn cas %q 0 %q: get %q", bin, val, out)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		out := mustCLI(t, "members", addr)
		if !strings.Contains(out, "solo") || !strings.Contains(out, n.Raft) || !strings.Contains(out, "voter") {
			t.Fatalf("members: %q", out)
		}
		var ms []member
		json.Unmarshal([]byte(mustCLI(t, "members", "--json", addr)), &ms)
		if len(ms) != 1 || ms[0].ID != "solo" || !ms[0].Leader {
			t.Fatalf("members --json: %+v", ms)
		}
		out = mustCLI(t, "status", addr)
		for _, want := range []string{"node:          solo", "leader:        solo", "ready:         yes", "members:       1 (solo*)"} {
			if !strings.Contains(out, want) {
				t.Fatalf("status lacks %q:\n%s", want, out)
			}
		}
		var st struct {
			NodeID string `json:"node_id"`
			Ready  bool   `json:"ready"`
		}
		json.Unmarshal([]byte(mustCLI(t, "status", "--json", addr)), &st)
		if st.NodeID != "solo" || !st.Ready {
			t.Fatalf("status --json: %+v", st)
		}
		// raftkv key creates a key once and prints its trust line; trust
		// authorises it cluster-wide and prints the whole list.
		dir := filepath.Join(t.TempDir(), "n9")
		line := strings.TrimSpace(mustCLI(t, "key", "--data-dir", dir, "--node-id", "n9"))
		if !strings.HasPrefix(line, "ssh-ed25519 ") || !strings.HasSuffix(line, " n9") {
			t.Fatalf("key: %q", line)
		}
		if again := strings.TrimSpace(mustCLI(t, "key", "--data-dir", dir, "--node-id", "n9")); again != line {
			t.Fatalf("key changed: %q then %q", line, again)
		}
		out = mustCLI(t, "trust", line, addr)
		if !strings.Contains(out, line) || !strings.Contains(out, " solo\n") {
			t.Fatalf("trust: %q", out)
		}
		failWith(t, 1, "bad_request", "trust", "not a key")
		failWith(t, 1, "", "remove", "nobody")
	})

	t.Run("backup-restore", func(t *testing.T) {
		mustCLI(t, "put", "bk", "before", addr)
		file := filepath.Join(t.TempDir(), "backup.bin")
		r := cli("backup", file, addr)
		if r.code != 0 || !strings.Contains(r.stderr, "bytes written to "+file) {
			t.Fatalf("backup: %+v", r)
		}
		before := mustCLI(t, "list", "--json", addr)
		mustCLI(t, "put", "bk", "after", addr)
		mustCLI(t, "put", "new", "key", addr)
		r = cli("restore", file, addr)
		if r.code != 0 || !strings.Contains(r.stderr, "bytes restored") {
			t.Fatalf("restore: %+v", r)
		}
		poll(t, 10*time.Second, "restored state", func() error {
			if after := mustCLI(t, "list", "--json", addr); after != before {
				return errorf("list after restore:\n%s\nwant\n%s", after, before)
			}
			return nil
		})
		failWith(t, 1, "", "restore", filepath.Join(t.TempDir(), "absent"))
		bad := filepath.Join(t.TempDir(), "bad")
		os.WriteFile(bad, []byte("not a backup"), 0o600)
		failWith(t, 1, "HTTP 4", "restore", bad)
	})

	t.Run("plugins", func(t *testing.T) {
		wasm := filepath.Join(t.TempDir(), "kv2.wasm")
		if err := os.WriteFile(wasm, kvwasm.Module, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := mustCLI(t, "plugin", "deploy", "kv2", wasm, addr); !strings.HasPrefix(out, "deployed kv2") {
			t.Fatalf("plugin deploy: %q", out)
		}
		if out := mustCLI(t, "plugin", "list", addr); !strings.Contains(out, "\nkv ") || !strings.Contains(out, "\nkv2 ") {
			t.Fatalf("plugin list: %q", out)
		}
		// An upgrade names the module running by the 12 characters plugin
		// list shows (kv with a custom section appended: another hash).
		other := filepath.Join(t.TempDir(), "kv2b.wasm")
		if err := os.WriteFile(other, append(slices.Clone(kvwasm.Module), 0, 6, 4, 't', 'e', 's', 't', 'x'), 0o600); err != nil {
			t.Fatal(err)
		}
		short := shortHash(plugin.HashOf(kvwasm.Module))
		if out := mustCLI(t, "plugin", "list", addr); !strings.Contains(out, short) {
			t.Fatalf("plugin list does not show %s: %q", short, out)
		}
		failWith(t, 1, "precondition_failed", "plugin", "deploy", "kv2", other, "--upgrade", "0123456789ab")
		if out := mustCLI(t, "plugin", "deploy", "kv2", other, "--upgrade", short, addr); !strings.Contains(out, shortHash(plugin.HashOf(append(slices.Clone(kvwasm.Module), 0, 6, 4, 't', 'e', 's', 't', 'x')))) {
			t.Fatalf("plugin deploy --upgrade %s: %q", short, out)
		}
		mustCLI(t, "plugin", "command", "kv2", `{"op":"SET","key":"k","value":"v"}`, addr)
		out := mustCLI(t, "plugin", "query", "kv2", `{"op":"GET","key":"k"}`, "--consistency", "linearizable", addr)
		var got struct{ Value string }
		if err := json.Unmarshal([]byte(out), &got); err != nil || got.Value != "v" {
			t.Fatalf("plugin query: %q (%v)", out, err)
		}
		var d digestAnswer
		json.Unmarshal([]byte(mustCLI(t, "plugin", "digest", "kv2", "--json", addr)), &d)
		if d.Plugin != "kv2" || d.Keys != 1 || len(d.Digest) != 64 {
			t.Fatalf("plugin digest: %+v", d)
		}
		failWith(t, 1, "bad_request", "plugin", "deploy", "bad", filepath.Join("main.go"))
		// Removed without --drop-state: the state is kept, said so, and
		// listed by --all with its size; --drop-state then deletes it.
		if out := mustCLI(t, "plugin", "remove", "kv2", addr); !strings.Contains(out, "its state is kept") || !strings.Contains(out, "raftkv plugin remove kv2 --drop-state") {
			t.Fatalf("plugin remove: %q", out)
		}
		if out := mustCLI(t, "plugin", "list", addr); strings.Contains(out, "kv2") {
			t.Fatalf("plugin list after remove: %q", out)
		}
		var all struct {
			Plugins    []kvclient.PluginInfo `json:"plugins"`
			KeptStates []keptState           `json:"kept_states"`
		}
		if err := json.Unmarshal([]byte(mustCLI(t, "plugin", "list", "--all", "--json", "--consistency", "linearizable", addr)), &all); err != nil ||
			len(all.KeptStates) != 1 || all.KeptStates[0] != (keptState{Name: "kv2", Keys: 1, Bytes: 2}) || len(all.Plugins) != 1 {
			t.Fatalf("plugin list --all: %+v (%v)", all, err)
		}
		if out := mustCLI(t, "plugin", "list", "--all", addr); !strings.Contains(out, "Kept state of removed plugins") || !strings.Contains(out, "\nkv2 ") {
			t.Fatalf("plugin list --all: %q", out)
		}
		mustCLI(t, "plugin", "remove", "kv2", "--drop-state", addr)
		if out := mustCLI(t, "plugin", "list", "--all", addr); strings.Contains(out, "kv2") || !strings.Contains(out, "no kept state") {
			t.Fatalf("plugin list --all after --drop-state: %q", out)
		}
		failWith(t, 1, "not_found", "plugin", "remove", "kv2", "--drop-state")
		failWith(t, 1, "unknown consistency", "plugin", "list", "--consistency", "bogus")
		failWith(t, 1, "", "plugin", "remove", "kv")
		failWith(t, 2, "unknown plugin subcommand", "plugin", "bogus")
	})

	t.Run("usage", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
		}{
			{[]string{"bogus"}, exitUsage},
			{[]string{"get"}, exitUsage},
			{[]string{"get", "a", "b"}, exitUsage},
			{[]string{"get", "--no-such-flag", "a"}, exitUsage},
			{[]string{"cas", "k", "notanumber", "v"}, exitUsage},
			{[]string{"get", "k", "--timeout", "-1s"}, exitUsage},
			{[]string{"get", "k", "--timeout", "0s"}, exitUsage},
			{[]string{"help"}, exitOK},
			{[]string{"help", "serve"}, exitOK},
			{[]string{"get", "-h"}, exitOK},
			{[]string{"--help"}, exitOK},
			{[]string{"version"}, exitOK},
		} {
			if r := cli(c.args...); r.code != c.code {
				t.Errorf("raftkv %s: exit %d, want %d (stderr %q)", strings.Join(c.args, " "), r.code, c.code, r.stderr)
			}
		}
		// The client retries a node that refuses connections until --timeout
		// (30 s by default: a restarting node); the last cause is reported.
		if r := cli("get", "k", "--addr", "http://127.0.0.1:1", "--timeout", "1s"); r.code != exitError || !strings.Contains(r.stderr, "connection refused") {
			t.Errorf("unreachable node: %+v", r)
		}
		if out := mustCLI(t, "help", "put"); !strings.Contains(out, "[env RAFTKV_ADDR]") {
			t.Errorf("help put does not name RAFTKV_ADDR:\n%s", out)
		}
	})
}

// TestCLIToken checks the bearer token, from the flag and from RAFTKV_TOKEN.
func TestCLIToken(t *testing.T) {
	n := startInProcess(t, "--token", "s3cret")
	if r := cli("put", "k", "v", "--addr", n.URL); r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Fatalf("no token: %+v", r)
	}
	mustCLI(t, "put", "k", "v", "--addr", n.URL, "--token", "s3cret")
	t.Setenv("RAFTKV_TOKEN", "s3cret")
	t.Setenv("RAFTKV_ADDR", n.HTTP) // no scheme: http://
	if out := mustCLI(t, "get", "k"); out != "v\n" {
		t.Fatalf("get with RAFTKV_TOKEN: %q", out)
	}
}

func jsonNum(v uint64) string { b, _ := json.Marshal(v); return string(b) }

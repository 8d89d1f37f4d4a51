package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/plugin"
	"github.com/raftkv/raftkv/plugins/kv/kvwasm"
)

// TestBackupInspect: inspect describes a real backup exactly (what the node
// reports for the same state), refuses damaged files, and a restore moves
// the applied index ahead as docs/cli.md says.
func TestBackupInspect(t *testing.T) {
	n := startInProcess(t)
	addr := "--addr=" + n.URL
	for i := range 30 {
		mustCLI(t, "put", "k"+string(rune('a'+i%26))+strings.Repeat("x", i), "v", addr)
	}
	mustCLI(t, "put", addr, "bin", "--", "-\xff\x00")
	var digest struct {
		Digest       string `json:"digest"`
		AppliedIndex uint64 `json:"applied_index"`
		Keys         int    `json:"keys"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "plugin", "digest", "kv", "--json", addr)), &digest); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.bin")
	cli("backup", file, addr, "--quiet")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var info host.BackupInfo
	if err := json.Unmarshal([]byte(mustCLI(t, "backup", "inspect", file, "--json")), &info); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	switch {
	case info.FormatVersion != 1, info.Bytes != int64(len(data)), info.SHA256 != hex.EncodeToString(sum[:]):
		t.Fatalf("file facts: %+v", info)
	case info.AppliedIndex < digest.AppliedIndex, time.Since(info.Time) > time.Minute, info.Keys != 31:
		t.Fatalf("state facts: %+v (node: %+v)", info, digest)
	case len(info.Plugins) != 1 || info.Plugins[0].Name != "kv" || info.Plugins[0].Hash != plugin.HashOf(kvwasm.Module) || info.Plugins[0].Size != len(kvwasm.Module):
		t.Fatalf("plugins: %+v", info.Plugins)
	case len(info.Namespaces) != 1 || info.Namespaces[0].Name != "kv" || info.Namespaces[0].Keys != 31 || info.Namespaces[0].Digest != digest.Digest:
		t.Fatalf("namespaces: %+v, node's digest %+v", info.Namespaces, digest)
	case info.IdempotencyKeys != 31: // the CLI sends a key with every write
		t.Fatalf("idempotency keys: %d, want the 31 writes'", info.IdempotencyKeys)
	case len(info.Trust) != 1 || info.Trust[0] != "solo":
		t.Fatalf("trust: %v", info.Trust)
	}
	text := mustCLI(t, "backup", "inspect", file)
	for _, want := range []string{`checksums: +ok`, `format version: +1`, `applied index: +\d+`, `keys: +31`,
		`kv +` + info.Plugins[0].Hash + ` +3\.\d MiB +\d+`, `kv +31 +` + digest.Digest} {
		if !regexp.MustCompile(`(?m)^ *` + want + `$`).MatchString(text) {
			t.Errorf("inspect output lacks %q:\n%s", want, text)
		}
	}

	// Damage anywhere is found: in the header (a module byte), in the state,
	// or a truncation.
	damaged := func(name string, f func([]byte) []byte, want ...string) {
		bad := f(append([]byte(nil), data...))
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, bad, 0o600)
		r := cli("backup", "inspect", p)
		if r.code != exitError || !strings.Contains(r.stderr, "corrupt") || strings.Contains(r.stderr, "state: state:") {
			t.Errorf("%s: %+v", name, r)
		}
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: %q does not say %q", name, r.stderr, w)
			}
		}
	}
	damaged("module", func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	damaged("state", func(b []byte) []byte { b[len(b)-40] ^= 1; return b })
	damaged("truncated", func(b []byte) []byte { return b[:len(b)-10] }, "truncated")
	damaged("truncated-header", func(b []byte) []byte { return b[:100] }, "truncated: it ends inside its header")
	damaged("not-a-backup", func([]byte) []byte { return []byte("hello") })
	damaged("trailing-byte", func(b []byte) []byte { return append(b, 0) })
	damaged("two-backups", func(b []byte) []byte { return append(b, b...) })

	// A restore installs the backup at an index 65,537 past the leader's
	// last log index (docs/cli.md): the applied index jumps.
	mustCLI(t, "restore", file, addr, "--quiet")
	after := filepath.Join(t.TempDir(), "after.bin")
	cli("backup", after, addr, "--quiet")
	var info2 host.BackupInfo
	if err := json.Unmarshal([]byte(mustCLI(t, "backup", "inspect", after, "--json")), &info2); err != nil {
		t.Fatal(err)
	}
	if info2.AppliedIndex < info.AppliedIndex+1<<16 || info2.Namespaces[0].Digest != digest.Digest {
		t.Fatalf("after the restore: applied index %d (backup's %d), digest %s", info2.AppliedIndex, info.AppliedIndex, info2.Namespaces[0].Digest)
	}
	t.Logf("backup at index %d restored at index %d", info.AppliedIndex, info2.AppliedIndex)
}

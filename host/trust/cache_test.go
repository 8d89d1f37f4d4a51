package trust

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// seededKey returns the public key of the ed25519 key made from seed byte b,
// the same in every run.
func seededKey(t *testing.T, b byte) ssh.PublicKey {
	t.Helper()
	priv := ed25519.NewKeyFromSeed([]byte(strings.Repeat(string(rune(b)), ed25519.SeedSize)))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestCacheFormat: trust.json's bytes, which a node of a later version must
// still read, and a file written before the index was recorded.
func TestCacheFormat(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := seededKey(t, 1), seededKey(t, 2)
	c := Cache{Entries: []Entry{{"n1", k1}, {"n2", k2}}, Revoked: []string{"n3"}, Index: 42}
	if err := WriteCache(dir, c); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, CacheFile))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "trust": [
    "` + TrustLine(k1, "n1") + `",
    "` + TrustLine(k2, "n2") + `"
  ],
  "revoked": [
    "n3"
  ],
  "index": 42
}`
	if string(got) != want {
		t.Fatalf("trust.json:\n%s\nwant:\n%s", got, want)
	}
	if !strings.HasPrefix(TrustLine(k1, "n1"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI") {
		t.Fatalf("trust line %q", TrustLine(k1, "n1"))
	}
	fi, err := os.Stat(filepath.Join(dir, CacheFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("trust.json has mode %04o, want 0600", perm)
	}

	// An empty list is written as empty arrays, never null, and no index
	// at 0.
	if err := WriteCache(dir, Cache{}); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(filepath.Join(dir, CacheFile))
	if want := "{\n  \"trust\": [],\n  \"revoked\": []\n}"; string(got) != want {
		t.Fatalf("empty trust.json:\n%s\nwant:\n%s", got, want)
	}

	// A file of an earlier version has no index: the list is as of 0.
	old := `{"trust": ["` + TrustLine(k1, "n1") + `"], "revoked": ["n9"]}`
	if err := os.WriteFile(filepath.Join(dir, CacheFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, ok, err := ReadCache(dir)
	if err != nil || !ok {
		t.Fatalf("ReadCache of an earlier version's file: %v, %v", ok, err)
	}
	if rc.Index != 0 || len(rc.Entries) != 1 || rc.Entries[0].String() != TrustLine(k1, "n1") || !slices.Equal(rc.Revoked, []string{"n9"}) {
		t.Fatalf("ReadCache = %+v", rc)
	}
}

// TestCacheRoundTrip: what WriteCache wrote, ReadCache reads back, and a
// Trust set from it holds the same list; no temporary file is left.
func TestCacheRoundTrip(t *testing.T) {
	dir := t.TempDir()
	var tr Trust
	for _, id := range []string{"b", "a", "c"} {
		if err := tr.Add(id, newSigner(t).PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	tr.Revoke("c")
	tr.Revoke("gone")
	if err := WriteCache(dir, Cache{Entries: tr.Entries(), Revoked: tr.Revoked(), Index: 7}); err != nil {
		t.Fatal(err)
	}
	c, ok, err := ReadCache(dir)
	if err != nil || !ok {
		t.Fatalf("ReadCache: %v, %v", ok, err)
	}
	if c.Index != 7 || !slices.Equal(c.Revoked, []string{"c", "gone"}) {
		t.Fatalf("index %d, revoked %v", c.Index, c.Revoked)
	}
	var back Trust
	if err := back.Set(c.Entries); err != nil {
		t.Fatal(err)
	}
	lines := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.String())
		}
		return out
	}
	if got, want := lines(back.Entries()), lines(tr.Entries()); !slices.Equal(got, want) {
		t.Fatalf("entries read back %v, want %v", got, want)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 || files[0].Name() != CacheFile {
		t.Fatalf("data dir holds %v, want only %s", files, CacheFile)
	}
}

func TestReadCacheMissing(t *testing.T) {
	c, ok, err := ReadCache(t.TempDir())
	if ok || err != nil || c.Entries != nil || c.Index != 0 {
		t.Fatalf("ReadCache of a dir without trust.json = %+v, %v, %v", c, ok, err)
	}
}

// TestReadCacheRemovesLeftovers: a temporary file left by a crash in the
// middle of a write is neither read nor kept; other files stay.
func TestReadCacheRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCache(dir, Cache{Entries: []Entry{{"n1", seededKey(t, 1)}}}); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, CacheFile+".123456.tmp")
	other := filepath.Join(dir, CacheFile+".bak")
	for _, p := range []string{leftover, other} {
		if err := os.WriteFile(p, []byte(`{"trust": ["ssh-ed25519 AAAA`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, ok, err := ReadCache(dir)
	if err != nil || !ok || len(c.Entries) != 1 {
		t.Fatalf("ReadCache with a leftover temporary file = %+v, %v, %v", c, ok, err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temporary file: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a file that is not a temporary one of trust.json: %v", err)
	}
	// Without trust.json, leftovers go too.
	os.Remove(filepath.Join(dir, CacheFile))
	os.WriteFile(leftover, nil, 0o600)
	if _, ok, err := ReadCache(dir); ok || err != nil {
		t.Fatalf("ReadCache without trust.json = %v, %v", ok, err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temporary file without trust.json: %v", err)
	}
}

func TestReadCacheRefusesBadFiles(t *testing.T) {
	good := TrustLine(seededKey(t, 1), "n1")
	for name, tc := range map[string]struct {
		data string
		is   error
	}{
		"not JSON":          {data: `{"trust": [`},
		"a line without ID": {data: `{"trust": ["` + strings.TrimSuffix(good, " n1") + `"]}`, is: ErrInvalidTrustLine},
		"a bad node ID":     {data: `{"trust": ["` + good + `", "` + strings.TrimSuffix(good, "n1") + "a\\u0000b" + `"]}`, is: ErrInvalidTrustLine},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, CacheFile), []byte(tc.data), 0o600)
		_, ok, err := ReadCache(dir)
		if err == nil || ok || !strings.HasPrefix(err.Error(), CacheFile+": ") || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: ReadCache = %v, %v; want a %s error wrapping %v", name, ok, err, CacheFile, tc.is)
		}
	}
}

// TestWriteCacheFailureLeavesNoTemp: a write that fails keeps the previous
// file and leaves no temporary file.
func TestWriteCacheFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// trust.json is a non-empty directory: the rename fails.
	if err := os.MkdirAll(filepath.Join(dir, CacheFile, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := WriteCache(dir, Cache{Entries: []Entry{{"n1", seededKey(t, 1)}}})
	if err == nil || !strings.HasPrefix(err.Error(), CacheFile+": ") {
		t.Fatalf("WriteCache over a directory: %v", err)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("after a failed write the dir holds %v", files)
	}
	if err := WriteCache(filepath.Join(dir, "missing"), Cache{}); err == nil {
		t.Fatal("WriteCache into a missing directory succeeded")
	}
}

// TestCachedPeers: the other node IDs a cached list names, for
// host.FormerMember.
func TestCachedPeers(t *testing.T) {
	dir := t.TempDir()
	if got := CachedPeers(dir, "n1"); got != nil {
		t.Fatalf("no file: %v", got)
	}
	k := func(b byte) string { return strings.TrimSuffix(TrustLine(seededKey(t, b), "x"), " x") }
	data := `{"trust": ["` + k(1) + ` n1", "` + k(2) + ` n3", "broken", "` + k(3) + ` n2", "` + k(4) + ` n3"], "revoked": []}`
	os.WriteFile(filepath.Join(dir, CacheFile), []byte(data), 0o600)
	leftover := filepath.Join(dir, CacheFile+".1.tmp")
	os.WriteFile(leftover, nil, 0o600)
	if got := CachedPeers(dir, "n1"); !slices.Equal(got, []string{"n3", "n2"}) {
		t.Fatalf("CachedPeers = %q, want [n3 n2]", got)
	}
	if got := CachedPeers(dir, "n9"); !slices.Equal(got, []string{"n1", "n3", "n2"}) {
		t.Fatalf("CachedPeers of a node not in the list = %q", got)
	}
	if _, err := os.Stat(leftover); err != nil {
		t.Fatalf("CachedPeers changed the dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, CacheFile), []byte(`{"trust": [`), 0o600)
	if got := CachedPeers(dir, "n1"); got != nil {
		t.Fatalf("unreadable file: %v", got)
	}
}

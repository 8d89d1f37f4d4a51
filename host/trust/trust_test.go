package trust

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseAuthorizedKeys(t *testing.T) {
	k1, k2 := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	file := strings.Join([]string{
		"# cluster keys",
		"",
		TrustLine(k1, "n1"),
		"   ",
		TrustLine(k2, "n2") + "  ",
		TrustLine(k1, "n1"), // exact duplicate: ignored
	}, "\n")
	entries, err := ParseAuthorizedKeys([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].NodeID != "n1" || entries[1].NodeID != "n2" {
		t.Fatalf("entries %v", entries)
	}

	noComment := strings.Join([]string{"# c", TrustLine(k1, "n1"), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k2)))}, "\n")
	_, err = ParseAuthorizedKeys([]byte(noComment))
	if !errors.Is(err, ErrInvalidTrustLine) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("line without node ID: %v", err)
	}

	conflict := TrustLine(k1, "n1") + "\n" + TrustLine(k1, "n2") + "\n"
	_, err = ParseAuthorizedKeys([]byte(conflict))
	if !errors.Is(err, ErrKeyConflict) || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("conflicting lines: %v", err)
	}
}

func TestTrustSources(t *testing.T) {
	kf, kr, kx := newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t).PublicKey()
	path := filepath.Join(t.TempDir(), AuthorizedKeysFile)
	var tr Trust
	if err := tr.LoadAuthorizedKeys(path); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(path, []byte(TrustLine(kf, "file-node")+"\n"), 0o600)
	if err := tr.LoadAuthorizedKeys(path); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add("repl-node", kr); err != nil {
		t.Fatal(err)
	}
	expect := func(k ssh.PublicKey, want string) {
		t.Helper()
		got, ok := tr.NodeFor(k)
		if want == "" && ok {
			t.Fatalf("key trusted for %q, want untrusted", got)
		}
		if want != "" && (!ok || got != want) {
			t.Fatalf("NodeFor = %q, %v; want %q", got, ok, want)
		}
	}
	expect(kf, "file-node")
	expect(kr, "repl-node")
	expect(kx, "")
	expect(nil, "")
	trusts := func(id string, want bool) {
		t.Helper()
		if got := tr.Trusts(id); got != want {
			t.Fatalf("Trusts(%q) = %v, want %v", id, got, want)
		}
	}
	trusts("file-node", true)
	trusts("repl-node", true)
	trusts("nobody", false)

	// A bad file changes nothing.
	os.WriteFile(path, []byte("ssh-ed25519 broken\n"), 0o600)
	if err := tr.LoadAuthorizedKeys(path); err == nil {
		t.Fatal("broken file loaded")
	}
	expect(kf, "file-node")

	// Revoke beats the file; Add lifts it.
	tr.Revoke("file-node")
	expect(kf, "")
	trusts("file-node", false)
	if got := tr.Revoked(); !slices.Equal(got, []string{"file-node"}) {
		t.Fatalf("Revoked() = %v", got)
	}
	if err := tr.Add("file-node", kx); err != nil {
		t.Fatal(err)
	}
	// The replicated list now names file-node's keys: the file's other key
	// for it is stale, trusted for nobody (it came back with the Add: a
	// removed node's old key in some node's file, attack round 5).
	expect(kf, "")
	expect(kx, "file-node")
	if _, why := tr.Lookup(kf); !strings.Contains(why, "replicated trust list names other keys") {
		t.Errorf("Lookup of the stale file key: %q", why)
	}
	if len(tr.Revoked()) != 0 {
		t.Fatalf("Revoked() = %v after Add", tr.Revoked())
	}

	// Revoke also drops the node's replicated keys; Set lifts a revocation.
	tr.Revoke("repl-node")
	expect(kr, "")
	if err := tr.Set([]Entry{{NodeID: "repl-node", Key: kr}}); err != nil {
		t.Fatal(err)
	}
	expect(kr, "repl-node")
	expect(kx, "") // Set replaced the replicated set

	// Remove drops replicated keys only.
	tr.Remove("repl-node")
	expect(kr, "")
	trusts("repl-node", false)

	// A key the file binds to one node and the replicated set to another is
	// trusted for neither.
	os.WriteFile(path, []byte(TrustLine(kf, "file-node")+"\n"), 0o600)
	tr.LoadAuthorizedKeys(path)
	if err := tr.Add("other", kf); err != nil {
		t.Fatal(err)
	}
	expect(kf, "")
	trusts("other", false) // its only key is ambiguous
	id, why := tr.Lookup(kf)
	if id != "" || !strings.Contains(why, "more than one") {
		t.Fatalf("lookup of an ambiguous key = %q, %q", id, why)
	}
}

func TestTrustReplicatedConflicts(t *testing.T) {
	k := newSigner(t).PublicKey()
	var tr Trust
	if err := tr.Add("a", k); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add("a", k); err != nil {
		t.Fatalf("adding the same binding again: %v", err)
	}
	if err := tr.Add("b", k); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("Add of a's key for b: %v", err)
	}
	if err := tr.Set([]Entry{{"x", k}, {"y", k}}); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("Set with one key for two nodes: %v", err)
	}
	if err := tr.Set([]Entry{{"bad id", k}}); !errors.Is(err, ErrInvalidNodeID) {
		t.Fatalf("Set with a bad node ID: %v", err)
	}
	if err := tr.Set([]Entry{{"x", nil}}); err == nil {
		t.Fatal("Set with a nil key succeeded")
	}
	if got, ok := tr.NodeFor(k); !ok || got != "a" {
		t.Fatalf("failed updates changed the trust: %q %v", got, ok)
	}
}

func TestTrustChangedNotifies(t *testing.T) {
	var tr Trust
	ch := tr.Changed()
	if isClosed(ch) {
		t.Fatal("changed before any change")
	}
	tr.Remove("nobody")
	if !isClosed(ch) {
		t.Fatal("Remove did not notify")
	}
	ch = tr.Changed()
	tr.Add("a", newSigner(t).PublicKey())
	if !isClosed(ch) {
		t.Fatal("Add did not notify")
	}
}

// TestTrustModel applies random operations to a Trust and to a plain model
// and compares NodeFor and Entries after each.
func TestTrustModel(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4"}
	keys := make([]ssh.PublicKey, 6)
	for i := range keys {
		keys[i] = newSigner(t).PublicKey()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type model struct {
		file, repl map[int]string // key index -> node ID
		revoked    map[string]bool
	}
	m := model{file: map[int]string{}, repl: map[int]string{}, revoked: map[string]bool{}}
	var tr Trust
	dir := t.TempDir()
	for step := range 3000 {
		var op string
		switch rng.IntN(6) {
		case 0: // load a file
			m.file = map[int]string{}
			var lines []string
			for k := range keys {
				if rng.IntN(3) == 0 {
					id := ids[rng.IntN(len(ids))]
					m.file[k] = id
					lines = append(lines, TrustLine(keys[k], id))
				}
			}
			path := filepath.Join(dir, fmt.Sprint(step))
			os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600)
			if err := tr.LoadAuthorizedKeys(path); err != nil {
				t.Fatal(err)
			}
			op = "load"
		case 1: // Set
			repl := map[int]string{}
			var entries []Entry
			for k := range keys {
				if rng.IntN(3) == 0 {
					id := ids[rng.IntN(len(ids))]
					repl[k] = id
					entries = append(entries, Entry{id, keys[k]})
				}
			}
			if err := tr.Set(entries); err != nil {
				t.Fatal(err)
			}
			m.repl = repl
			for _, id := range repl {
				delete(m.revoked, id)
			}
			op = "set"
		case 2: // Add
			k, id := rng.IntN(len(keys)), ids[rng.IntN(len(ids))]
			err := tr.Add(id, keys[k])
			if prev, ok := m.repl[k]; ok && prev != id {
				if !errors.Is(err, ErrKeyConflict) {
					t.Fatalf("step %d: Add conflict: %v", step, err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				m.repl[k] = id
				delete(m.revoked, id)
			}
			op = "add"
		case 3, 4: // Remove / Revoke
			id := ids[rng.IntN(len(ids))]
			for k, v := range m.repl {
				if v == id {
					delete(m.repl, k)
				}
			}
			if rng.IntN(2) == 0 {
				tr.Remove(id)
				op = "remove"
			} else {
				tr.Revoke(id)
				m.revoked[id] = true
				op = "revoke"
			}
		case 5:
			op = "none"
		}
		for k, key := range keys {
			want, wantOK := "", false
			f, inF := m.file[k]
			r, inR := m.repl[k]
			named := false // the replicated list names f: its file-only keys are stale
			for _, id := range m.repl {
				named = named || id == f
			}
			switch {
			case inF && inR && f != r:
			case inF && !inR && named:
			case inF:
				want, wantOK = f, !m.revoked[f]
			case inR:
				want, wantOK = r, !m.revoked[r]
			}
			if !wantOK {
				want = ""
			}
			got, ok := tr.NodeFor(key)
			if got != want || ok != wantOK {
				t.Fatalf("step %d (%s): key %d: NodeFor = %q %v, model %q %v", step, op, k, got, ok, want, wantOK)
			}
		}
		if got := len(tr.Entries()); got != len(m.repl) {
			t.Fatalf("step %d (%s): %d entries, model %d", step, op, got, len(m.repl))
		}
	}
}

package transport

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layer is a rule of the layering that DESIGN.md ("Map of the tree")
// describes: the non-test Go files of the packages in dir (and in its
// subdirectories if deep) import nothing with one of the forbidden prefixes,
// except what allowed lets through.
type layer struct {
	dir       string // from the repository's root
	deep      bool
	forbidden []string
	allowed   []string
	why       string
}

var layers = []layer{
	{dir: "host/transport", forbidden: []string{"github.com/tetratelabs/wazero", "github.com/raftkv/raftkv/"},
		allowed: []string{"github.com/raftkv/raftkv/host/trust", "github.com/raftkv/raftkv/internal/deadline"},
		why:     "the transport imports no wazero, no abi and nothing of raftkv but the trust list (host/trust) and the leaf internal/deadline"},
	{dir: "internal/deadline", forbidden: []string{"github.com/raftkv/raftkv/"},
		why: "a leaf: the transport and internal/memnet share it"},
	{dir: "host/trust", forbidden: []string{"github.com/raftkv/raftkv/"},
		why: "the trust list imports nothing of raftkv: the transport and the node import it, not the other way round"},
	{dir: "host/peerrpc", forbidden: []string{"github.com/raftkv/raftkv/host", "github.com/raftkv/raftkv/plugins/sdk"},
		allowed: []string{"github.com/raftkv/raftkv/host/trust", "github.com/raftkv/raftkv/host/plugin", "github.com/raftkv/raftkv/host/logstore"},
		why: "the forwarding protocol does not know the node: package host imports it, never the other way round; of host/... it imports only " +
			"the trust list (node IDs), the plugin limits (a deploy's patch) and the log store (its write-failure error, a wire code)"},
	{dir: "host", deep: true, forbidden: []string{"github.com/raftkv/raftkv/plugins/sdk"},
		why: "the server does not import guest code (internal/sdknative bridges them for benchmarks)"},
	{dir: "cmd", deep: true, forbidden: []string{"github.com/raftkv/raftkv/plugins/sdk"},
		why: "the server does not import guest code (internal/sdknative bridges them for benchmarks)"},
	{dir: "internal/fsm", deep: true, forbidden: []string{"github.com/raftkv/raftkv/host", "github.com/raftkv/raftkv/plugins/sdk"},
		allowed: []string{"github.com/raftkv/raftkv/host/plugin", "github.com/raftkv/raftkv/host/state", "github.com/raftkv/raftkv/host/trust"},
		why:     "the state machine is used by the node (package host), never the other way round; of host it imports only the plugin runtime, the state and the trust list, and no guest code"},
	{dir: "abi", deep: true, forbidden: []string{"github.com/raftkv/raftkv/"}, allowed: []string{"github.com/raftkv/raftkv/abi"},
		why: "the ABI imports no other raftkv package"},
}

// TestImports enforces the layering rules above.
func TestImports(t *testing.T) {
	for _, l := range layers {
		checked := 0
		root := filepath.Join("..", "..", filepath.FromSlash(l.dir))
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != root && (!l.deep || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
					return filepath.SkipDir
				}
				return nil
			}
			name := d.Name()
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if hasPrefix(p, l.forbidden) && !hasPrefix(p, l.allowed) {
					t.Errorf("%s imports %s: %s", filepath.ToSlash(path), p, l.why)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if checked == 0 {
			t.Fatalf("%s: no source files checked", l.dir)
		}
	}
}

func hasPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == strings.TrimSuffix(p, "/") || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// TestServerLinksNoGuestCode: what TestImports checks file by file, for the
// whole import graph of the server's packages: none links the guest SDK,
// not even through a package it imports (the kv protocol's codec is
// kvstore's, which imports no SDK; kvplugin puts it behind the SDK).
func TestServerLinksNoGuestCode(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command: %v", err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{end}}`, "./host/...", "./internal/fsm/...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if hasPrefix(p, []string{"github.com/raftkv/raftkv/plugins/sdk"}) {
			t.Errorf("a package of host/... or internal/fsm links %s: the server does not link guest code", p)
		}
	}
}

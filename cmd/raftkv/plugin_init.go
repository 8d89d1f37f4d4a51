package main

import (
	"embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/raftkv/raftkv/host"
)

//go:embed scaffold/*.tmpl scaffold/wasmtest/*.tmpl
var scaffold embed.FS

// scaffoldFiles maps each template to the file it becomes.
var scaffoldFiles = map[string]string{
	"go.mod.tmpl":                "go.mod",
	"plugin.go.tmpl":             "plugin.go",
	"register_wasip1.go.tmpl":    "register_wasip1.go",
	"plugin_test.go.tmpl":        "plugin_test.go",
	"wasmtest/go.mod.tmpl":       "wasmtest/go.mod",
	"wasmtest/wasm_test.go.tmpl": "wasmtest/wasm_test.go",
	"Makefile.tmpl":              "Makefile",
	"README.md.tmpl":             "README.md",
}

func pluginInit(args []string, stdout io.Writer) error {
	fs := newFlagSet("plugin init", "NAME [DIR] [flags]", "Create a Go plugin project in DIR (default: ./NAME): go.mod, the plugin (an sdk.Router with one\ncommand and one query), a native test, a wasm test (plugintest, in its own module wasmtest/, as it needs the\nhost), a Makefile and a README. raftkv is not published, so the go.mod files replace its modules with the\ncheckout given by --raftkv. Then: cd DIR && go mod tidy && make test.", stdout)
	module := fs.String("module", "", "the project's Go module path (default example.com/NAME)")
	raftkv := fs.String("raftkv", "", "path of the raftkv checkout go.mod points at (replace directive)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 2); err != nil {
		return err
	}
	name := pos[0]
	if err := host.ValidPluginName(name); err != nil {
		return usagef("%v", err)
	}
	dir := name
	if len(pos) == 2 {
		dir = pos[1]
	}
	if *module == "" {
		*module = "example.com/" + name
	}
	data := struct{ Name, Module, Replace string }{Name: name, Module: *module}
	if *raftkv != "" {
		abs, err := filepath.Abs(*raftkv)
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(abs, "go.mod")); err != nil {
			return fmt.Errorf("--raftkv %s: not a raftkv checkout: %w", *raftkv, err)
		}
		data.Replace = abs
	}
	if err := os.MkdirAll(filepath.Join(dir, "wasmtest"), 0o755); err != nil {
		return err
	}
	for _, file := range scaffoldFiles {
		path := filepath.Join(dir, file)
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: plugin init writes only new files", path)
		}
	}
	for tmpl, file := range scaffoldFiles {
		t, err := template.ParseFS(scaffold, "scaffold/"+tmpl)
		if err != nil {
			return err
		}
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if data.Replace != "" {
		// The checkout's go.sum files have the hashes of every module the
		// two modules need, so go mod tidy works offline: the plugin needs
		// the SDK's; wasmtest needs the host module's and those of the abi
		// and SDK modules it replaces (msgpack's go.mod names a testify the
		// host's graph does not), so it gets all three.
		for to, from := range map[string][]string{"go.sum": {"plugins/sdk/go.sum"}, "wasmtest/go.sum": {"go.sum", "abi/go.sum", "plugins/sdk/go.sum"}} {
			sum, err := mergeSums(data.Replace, from)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, to), sum, 0o644)
			}
			if err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "created %s: the plugin %q\nnext: cd %s && go mod tidy && (cd wasmtest && go mod tidy) && make test && make\n", dir, name, dir)
	if data.Replace == "" {
		fmt.Fprintf(stdout, "first set the replace directives in %s and wasmtest/go.mod to your raftkv checkout (or use --raftkv)\n", filepath.Join(dir, "go.mod"))
	}
	return nil
}

// mergeSums returns the lines of the go.sum files under root, each once, in
// go.sum's order.
func mergeSums(root string, files []string) ([]byte, error) {
	var lines []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		lines = append(lines, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}
	slices.Sort(lines)
	return []byte(strings.Join(slices.Compact(lines), "\n") + "\n"), nil
}

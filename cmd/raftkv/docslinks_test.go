package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestDocsLinks holds the repository's Markdown to the tree: every relative
// link ([text](path#anchor)) names a file that exists and, in a Markdown
// file, a heading that exists; every path in backquotes that begins with a
// top-level directory of the repository (`internal/fsm/fsm.go`, `internal/crashtest`,
// `plugins/kv/kvstore/`), and every Markdown file named in backquotes,
// exists, relative to the document or to the root.
// DESIGN.md cites the code by file name, so a file that moves without its
// documentation fails here.
func TestDocsLinks(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs := markdownFiles(t, root)
	if len(docs) < 10 {
		t.Fatalf("found %d Markdown files under %s", len(docs), root)
	}
	top := map[string]bool{}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			top[e.Name()] = true
		}
	}
	anchors := map[string]map[string]bool{}
	headingsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := markdownAnchors(t, path)
		anchors[path] = a
		return a
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	quoted := regexp.MustCompile("`([a-z][A-Za-z0-9_.-]*/[A-Za-z0-9_./-]*)`")
	quotedDoc := regexp.MustCompile("`([A-Za-z0-9_./-]+\\.md)`")
	for _, doc := range docs {
		rel, _ := filepath.Rel(root, doc)
		text := withoutCodeBlocks(readFile(t, doc))
		dir := filepath.Dir(doc)
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := doc
			if path != "" {
				file = filepath.Join(dir, filepath.FromSlash(path))
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s: link %q: %v", rel, target, err)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(file, ".md") && !headingsOf(file)[anchor] {
				t.Errorf("%s: link %q: %s has no heading with the anchor %q", rel, target, filepath.Base(file), anchor)
			}
		}
		for _, m := range quoted.FindAllStringSubmatch(text, -1) {
			path := m[1]
			if !top[strings.SplitN(path, "/", 2)[0]] {
				continue // not a path of the tree: application/json, host:port, ...
			}
			if !pathExists(filepath.Join(dir, path)) && !pathExists(filepath.Join(root, path)) && !ignored(root, path) {
				t.Errorf("%s: `%s` does not exist (relative to the document or to the repository root)", rel, path)
			}
		}
		for _, m := range quotedDoc.FindAllStringSubmatch(text, -1) {
			// A document named in backquotes, wherever it claims to be
			// (a path on a build machine is not in the repository).
			path := m[1]
			if !pathExists(filepath.Join(dir, path)) && !pathExists(filepath.Join(root, path)) {
				t.Errorf("%s: `%s` is not a document of the repository (relative to the document or to the root)", rel, path)
			}
		}
	}
}

// pathExists reports whether path exists, or, for a Go symbol written
// package-qualified (internal/kvmodel.HistoryModel), whether its package does.
func pathExists(path string) bool {
	if _, err := os.Stat(path); err == nil {
		return true
	}
	base := filepath.Base(path)
	if i := strings.IndexByte(base, '.'); i > 0 && unicode.IsUpper(rune(base[i+1])) {
		_, err := os.Stat(filepath.Join(filepath.Dir(path), base[:i]))
		return err == nil
	}
	return false
}

// ignored reports whether a path of the tree (relative to root) is one
// that Git ignores by name: a file a script generates, such as the Docker
// example's secrets/token. Only plain names and directories in the
// .gitignore files of the path's directories count.
func ignored(root, path string) bool {
	parts := strings.Split(filepath.ToSlash(path), "/")
	for i := range parts {
		data, err := os.ReadFile(filepath.Join(root, filepath.Join(parts[:i]...), ".gitignore"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			name := strings.Trim(strings.TrimSpace(line), "/")
			if name != "" && name == parts[i] {
				return true
			}
		}
	}
	return false
}

// markdownFiles lists the repository's Markdown files, outside hidden and
// build directories.
func markdownFiles(t *testing.T, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "target" || name == "node_modules" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".md") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// markdownAnchors returns the anchors of a Markdown file's headings, as
// GitHub makes them: lower case, punctuation dropped, spaces as hyphens, a
// repeated heading suffixed -1, -2, ...
func markdownAnchors(t *testing.T, path string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(withoutCodeBlocks(readFile(t, path)), "\n") {
		trimmed := strings.TrimLeft(line, "#")
		if len(trimmed) == len(line) || !strings.HasPrefix(trimmed, " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(trimmed)) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		slug := b.String()
		for i, s := 1, slug; ; i++ {
			if !out[s] {
				out[s] = true
				break
			}
			s = slug + "-" + itoa(i)
		}
	}
	return out
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// withoutCodeBlocks blanks fenced code blocks, whose text is neither a
// heading nor a link.
func withoutCodeBlocks(s string) string {
	lines := strings.Split(s, "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			lines[i] = ""
			continue
		}
		if in {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("ab", 16)
	if tok, err := ReadTokenFile(write("good", good+"\n")); err != nil || tok != good {
		t.Fatalf("ReadTokenFile = %q, %v; want %q", tok, err, good)
	}
	for name, content := range map[string]string{
		"empty": "", "blank": " \n\n", "short": "0123456789abcde\n", "two": good + " " + good, "ctl": good + "\x01x",
	} {
		_, err := ReadTokenFile(write(name, content))
		if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err %v, want ErrBadToken naming the file", name, err)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil || !os.IsNotExist(errors.Unwrap(err)) {
		t.Errorf("missing file: %v", err)
	}
}

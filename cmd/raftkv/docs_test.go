package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocsCurrent checks that README.md's configuration table names every
// serve flag with its variable, and docs/cli.md every command.
func TestDocsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cliDoc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	help := mustCLI(t, "serve", "-h")
	flags := regexp.MustCompile(`(?m)^  --([a-z-]+)`).FindAllStringSubmatch(help, -1)
	if len(flags) < 20 {
		t.Fatalf("found %d flags in serve -h", len(flags))
	}
	for _, f := range flags {
		for _, want := range []string{"`--" + f[1] + "`", "`" + envName(f[1]) + "`"} {
			if !strings.Contains(string(readme), want) {
				t.Errorf("README.md does not mention %s", want)
			}
		}
	}
	for _, c := range commands() {
		if !strings.Contains(string(cliDoc), "`"+c.name) && !strings.Contains(string(cliDoc), "raftkv "+c.name) {
			t.Errorf("docs/cli.md does not document %q", c.name)
		}
	}
}

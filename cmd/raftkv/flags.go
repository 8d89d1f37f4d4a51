package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// flagSet is a flag.FlagSet with three additions: flags may come after
// positional arguments ("raftkv get k --json"), flags bound to the
// environment read RAFTKV_<NAME> (and seed aliases such as NODE_ID) when they
// are not on the command line, and -h prints a usage that names those
// variables. The command line wins over the environment.
type flagSet struct {
	*flag.FlagSet
	name, args, summary string
	env                 map[string][]string // flag name → environment variables, in priority order
	stdout              io.Writer
	lookupEnv           func(string) (string, bool)
}

func newFlagSet(name, args, summary string, stdout io.Writer) *flagSet {
	fs := &flagSet{
		FlagSet: flag.NewFlagSet("raftkv "+name, flag.ContinueOnError),
		name:    name, args: args, summary: summary,
		env:       map[string][]string{},
		stdout:    stdout,
		lookupEnv: os.LookupEnv,
	}
	fs.SetOutput(io.Discard) // errors are reported by run, help by parse
	return fs
}

// envName is the variable that sets a flag: RAFTKV_HTTP_ADDR for http-addr.
func envName(flagName string) string {
	return "RAFTKV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// bindEnv makes the named flags read RAFTKV_<NAME>, then the aliases given
// for them (name → extra variables).
func (fs *flagSet) bindEnv(aliases map[string][]string, names ...string) {
	for _, n := range names {
		if fs.Lookup(n) == nil {
			panic("bindEnv: no flag " + n)
		}
		fs.env[n] = append([]string{envName(n)}, aliases[n]...)
	}
}

// bindAllEnv binds every flag defined so far.
func (fs *flagSet) bindAllEnv(aliases map[string][]string) {
	fs.VisitAll(func(f *flag.Flag) { fs.bindEnv(aliases, f.Name) })
}

// parse parses args, flags and positional arguments mixed ("--" ends the
// flags), applies the environment and returns the positional arguments.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.FlagSet.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(fs.stdout)
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	names := make([]string, 0, len(fs.env))
	for n := range fs.env {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if onCommandLine[n] {
			continue
		}
		for _, v := range fs.env[n] {
			val, ok := fs.lookupEnv(v)
			if !ok || val == "" {
				continue
			}
			if err := fs.Set(n, val); err != nil {
				return nil, usageError{fmt.Sprintf("environment variable %s=%q: %v", v, val, err)}
			}
			break
		}
	}
	return pos, nil
}

// isSet reports whether a flag was given on the command line or through the
// environment.
func (fs *flagSet) isSet(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: raftkv %s %s\n\n%s\n", fs.name, fs.args, fs.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintln(w, line)
		usage = strings.ReplaceAll(usage, "\n", "\n      ")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %q)", f.DefValue)
		}
		if env := fs.env[f.Name]; len(env) > 0 {
			usage += " [env " + strings.Join(env, ", ") + "]"
		}
		fmt.Fprintln(w, "      "+usage)
	})
}

// optionalBool is a boolean flag that remembers whether it was set, so that
// "--bootstrap=false" can mean something else than no --bootstrap at all.
type optionalBool struct {
	value, set bool
}

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return ""
	}
	return fmt.Sprint(b.value)
}

func (b *optionalBool) Set(s string) error {
	switch strings.ToLower(s) {
	case "1", "t", "true", "yes", "y", "on":
		b.value = true
	case "0", "f", "false", "no", "n", "off":
		b.value = false
	default:
		return fmt.Errorf("invalid boolean %q", s)
	}
	b.set = true
	return nil
}

func (b *optionalBool) IsBoolFlag() bool { return true }

// Command raftkv-bench loads a raftkv cluster over its HTTP API and reports
// throughput and latency (raftkv-bench -h). It is a tool of its own, not a
// subcommand of the server binary: a load generator with its own HTTP/1.1
// client (benchconn.go, which measures the cluster rather than Go's
// net/http) is no part of what a node runs. scripts/bench.sh (make bench),
// scripts/readcpu.sh and bench/etcd drive it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
)

// Exit codes, as raftkv's.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := doMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func doMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runBench(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "raftkv-bench: %v\nRun 'raftkv-bench -h' for usage.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "raftkv-bench: %v\n", err)
		return exitError
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// flagSet is the standard FlagSet with raftkv's conventions: every flag
// can also be set with RAFTKV_<FLAG> (RAFTKV_TOKEN for --token), -h prints
// the summary and the flags on stdout.
type flagSet struct {
	*flag.FlagSet
	summary string
	stdout  io.Writer
	set     map[string]bool
}

func newFlagSet(name, args, summary string, stdout io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet("raftkv-bench", flag.ContinueOnError), summary: summary, stdout: stdout}
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args, then sets each flag not given from its RAFTKV_<FLAG>
// variable; it returns the positional arguments.
func (fs *flagSet) parse(args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(fs.stdout, "Usage: raftkv-bench [flags]\n\n%s\n\nFlags (each also read from RAFTKV_<FLAG>, e.g. RAFTKV_TOKEN):\n", strings.TrimSpace(fs.summary))
			fs.SetOutput(fs.stdout)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	fs.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fs.set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "RAFTKV_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !fs.set[f.Name] && err == nil {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usagef("%s: %v", env, serr)
			}
			fs.set[f.Name] = true
		}
	})
	return fs.Args(), err
}

func (fs *flagSet) isSet(name string) bool { return fs.set[name] }

func needArgs(pos []string, min, max int) error {
	switch {
	case len(pos) < min:
		return usagef("missing arguments (want %d, got %d)", min, len(pos))
	case max >= 0 && len(pos) > max:
		return usagef("too many arguments (want at most %d, got %d)", max, len(pos))
	}
	return nil
}

// clientFlags are the connection flags raftkv's client commands have too.
type clientFlags struct {
	addr, token, tokenFile, caCert string
	timeout                        time.Duration
	json                           bool
}

func addClientFlags(fs *flagSet) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&f.addr, "addr", "http://127.0.0.1:8080", "HTTP address of any node")
	fs.StringVar(&f.token, "token", "", "bearer token, when the cluster requires one (visible in ps: prefer --token-file or RAFTKV_TOKEN)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read the bearer token from this file")
	fs.StringVar(&f.caCert, "ca-cert", "", "CA certificate (PEM) to verify an https:// node (default: system roots)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time limit of each request")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of human output")
	return f
}

// bearer returns the token: --token, or the content of --token-file.
func (f *clientFlags) bearer() (string, error) {
	if f.tokenFile == "" {
		return f.token, nil
	}
	if f.token != "" {
		return "", usagef("--token and --token-file are exclusive (RAFTKV_TOKEN sets --token)")
	}
	tok, err := kvclient.ReadTokenFile(f.tokenFile)
	if err != nil {
		return "", usageError{"--token-file: " + err.Error()}
	}
	return tok, nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// apiError is an error answer of the API.
type apiError = kvclient.Error

// tlsConfig verifies https nodes with caFile's certificates ("" : the
// system roots, nil config).
func tlsConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate found", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// nodeClient is the public client on one node, without retries: a probe.
func nodeClient(addr, token string, tc *tls.Config, timeout time.Duration) (*kvclient.Client, error) {
	cfg := kvclient.DefaultConfig()
	cfg.Endpoints, cfg.Token, cfg.TLSConfig, cfg.MaxAttempts = []string{addr}, token, tc, 1
	cfg.HTTPClient = &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}
	return kvclient.New(cfg)
}

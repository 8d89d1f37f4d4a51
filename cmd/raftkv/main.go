// Command raftkv is the raftkv server and its command-line client.
//
//	raftkv [serve] [flags]        run a node (the default when no subcommand is given)
//	raftkv key                    create the node key and print its trust line
//	raftkv get|put|delete|...     talk to a running cluster over HTTP
//
// Every subcommand lives in its own file and is reached through doMain, so the
// whole CLI is tested in-process. See docs/cli.md for the reference.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(doMain(os.Args[1:], os.Stdout, os.Stderr))
}

// doMain runs the CLI with args (without the program name) and returns the
// process exit code. SIGINT and SIGTERM cancel the command's context: a server
// shuts down gracefully, a client request is abandoned. A second signal ends
// the process at once.
func doMain(args []string, stdout, stderr io.Writer) int {
	// The first signal starts a graceful shutdown (bounded: see serve's
	// --shutdown-timeout); a second one ends the process at once, by that
	// signal. The channel takes both from the start: with
	// signal.NotifyContext, whose stop ran in a goroutine after the
	// cancellation, a second SIGTERM sent right after the shutdown had
	// begun could arrive before the stop and be swallowed (CI:
	// TestServeSIGTERMStoppedPeers/two_signals, still running 6 s later).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			syscall.Kill(os.Getpid(), s.(syscall.Signal))
		case <-done:
		}
	}()
	return run(ctx, args, stdout, stderr)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad flags or arguments
)

// command is one subcommand.
type command struct {
	name    string
	args    string // argument synopsis for the usage line
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every subcommand in the order the help shows them.
func commands() []command {
	return []command{
		{"serve", "[flags]", "run a node (the default command)", runServe},
		{"key", "[--data-dir D] [--node-id ID]", "create the node key if absent and print its trust line", runKey},
		{"get", "KEY", "read a key", runGet},
		{"put", "KEY [VALUE|-]", "write a key (VALUE from stdin when absent or -)", runPut},
		{"delete", "KEY", "delete a key", runDelete},
		{"list", "[--prefix P | --start S --end E] [--limit N]", "list keys in order", runList},
		{"cas", "KEY VERSION VALUE", "write KEY only if its version is VERSION (0: only if absent)", runCAS},
		{"txn", "OP...", "run SET/DELETE/CAS ops atomically", runTxn},
		{"members", "", "list the cluster's members", runMembers},
		{"status", "[--cluster]", "show the node's view of the cluster (--cluster: every member's status)", runStatus},
		{"health", "[--ready] [--cluster]", "exit 0 when the node (--cluster: every member) is healthy", runHealth},
		{"join", "ID RAFT_ADDR", "add a node (its key must be trusted first)", runJoin},
		{"remove", "ID", "remove a member and revoke its keys", runRemove},
		{"trust", "LINE|--file F", "authorise a node key on every member; prints the trust list", runTrust},
		{"backup", "FILE|- | inspect FILE", "write a backup of the cluster's state; inspect: describe and verify a backup file", runBackup},
		{"restore", "FILE|-", "replace the cluster's state with a backup (send to the leader)", runRestore},
		{"plugin", "deploy|list|show|limits|reset|remove|digest|command|query|run|init ...", "manage WebAssembly plugins", runPlugin},
		{"version", "", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		printUsage(stdout)
		return exitOK
	} else if len(args) > 0 && (args[0] == "-version" || args[0] == "--version") {
		name, args = "version", args[1:]
	}
	if name == "help" {
		if len(args) == 0 {
			printUsage(stdout)
			return exitOK
		}
		name, args = args[0], []string{"-h"}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args, stdout, stderr)
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "raftkv %s: %v\nRun 'raftkv %s -h' for usage.\n", name, err, name)
			return exitUsage
		default:
			fmt.Fprintf(stderr, "raftkv %s: %v\n", name, err)
			return exitError
		}
	}
	fmt.Fprintf(stderr, "raftkv: unknown command %q\nRun 'raftkv help' for usage.\n", name)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "raftkv: a Raft-replicated state machine service whose logic runs as WebAssembly plugins.")
	fmt.Fprintln(w, "\nUsage:\n  raftkv [command] [flags] [arguments]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nWith no command, raftkv runs 'serve'. Every flag can also be set with the environment")
	fmt.Fprintln(w, "variable RAFTKV_<FLAG> (RAFTKV_HTTP_ADDR for --http-addr). Run 'raftkv help COMMAND' for details.")
}

// usageError is a mistake in the command line; doMain exits with exitUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

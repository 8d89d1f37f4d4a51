package httpapi

// TestErrorMapping runs testdata/errors/*.txt: each case names an error, as
// a Go expression, and shows the HTTP answer the API gives for it (status,
// headers and body, through writeError and classify, the package's one
// mapping of errors to answers) and what it logs. The scripts are the
// reference for docs/api.md's "Errors" section, which the test holds to them.
//
// To regenerate the expected output after a deliberate change:
//
//	go test ./host/httpapi -run TestErrorMapping -rewrite
//
// and review the diff (then update docs/api.md if the test says so).
//
// Directives (github.com/cockroachdb/datadriven):
//
//	error [on=leader|follower] [started] [probe]
//	          the input is one error expression (see evalError). The answer
//	          is written by an API without a node, or, with on=, by the
//	          API of that member of the running cluster (not_leader and
//	          no_leader answers name the leader, which needs a node).
//	          started: the answer had already begun; probe: the request was
//	          a /readyz probe.
//	cluster nodes=N [unpublished]
//	          starts a cluster of N real nodes (over SSH; N > 1 is skipped
//	          under -short), each publishing the API address
//	          http://<id>.test:8080 (none if unpublished), and waits until
//	          every node knows the leader and its address. Node IDs and
//	          Raft addresses are shown as <leader>, <follower raft address>
//	          and so on in the answers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/plugins/kv/kvstore"
)

// hostSentinels are the errors of package host, by the name cases use.
var hostSentinels = map[string]error{
	"host.ErrNotLeader":       host.ErrNotLeader,
	"host.ErrNoLeader":        host.ErrNoLeader,
	"host.ErrTimeout":         host.ErrTimeout,
	"host.ErrUnknownOutcome":  host.ErrUnknownOutcome,
	"host.ErrUnknownPlugin":   host.ErrUnknownPlugin,
	"host.ErrInvalid":         host.ErrInvalid,
	"host.ErrClosed":          host.ErrClosed,
	"host.ErrStopped":         host.ErrStopped,
	"host.ErrNotFound":        host.ErrNotFound,
	"host.ErrDegraded":        host.ErrDegraded,
	"host.ErrNotReady":        host.ErrNotReady,
	"host.ErrPrecondition":    host.ErrPrecondition,
	"host.ErrConflict":        host.ErrConflict,
	"host.ErrQuarantined":     host.ErrQuarantined,
	"host.ErrForbidden":       host.ErrForbidden,
	"host.ErrCorruptSnapshot": host.ErrCorruptSnapshot,
}

// answered records the (status, code) pairs the scripts produced, for the
// check of docs/api.md.
type answered map[string]bool // "409 conflict"

func TestErrorMapping(t *testing.T) {
	seen := answered{}
	named := map[string]bool{} // host sentinels the cases name
	datadriven.Walk(t, "testdata/errors", func(t *testing.T, path string) {
		var nodes map[string]*host.Node // by role: leader, follower
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			switch td.Cmd {
			case "cluster":
				var n int
				td.ScanArgs(t, "nodes", &n)
				if td.HasArg("full-disk") {
					nodes = startFullDiskNode(t)
				} else {
					nodes = startErrorCluster(t, n, !td.HasArg("unpublished"))
				}
				return ""
			case "error":
				ev := &evaluator{sentinels: hostSentinels, named: named}
				err, evalErr := ev.parse(strings.TrimSpace(td.Input))
				if evalErr != nil {
					td.Fatalf(t, "%v", evalErr)
				}
				var node *host.Node
				if td.HasArg("on") {
					var role string
					td.ScanArgs(t, "on", &role)
					if node = nodes[role]; node == nil {
						td.Fatalf(t, "on=%s: no such member (start a cluster first)", role)
					}
				} else if code := classify(err).code; code == "not_leader" || code == "no_leader" {
					td.Fatalf(t, "a %s answer names the leader: say on=leader or on=follower", code)
				}
				out := answer(t, node, err, td.HasArg("started"), td.HasArg("probe"), seen)
				for role, n := range nodes {
					out = strings.ReplaceAll(out, n.Address(), "<"+role+" raft address>")
					out = strings.ReplaceAll(out, n.ID(), "<"+role+">")
				}
				return failingSince.ReplaceAllString(out, "${1}<why>${2}<time>)")
			}
			td.Fatalf(t, "unknown directive %q", td.Cmd)
			return ""
		})
	})
	if t.Failed() {
		return
	}
	t.Run("every host error has a case", func(t *testing.T) {
		for _, name := range hostErrorNames(t) {
			if hostSentinels[name] == nil {
				t.Errorf("%s is not in hostSentinels: add it, and a case in testdata/errors", name)
			} else if !named[name] {
				t.Errorf("no case in testdata/errors answers %s", name)
			}
		}
	})
	t.Run("docs/api.md", func(t *testing.T) { checkErrorDocs(t, seen) })
}

// answer writes err as the API of node (nil: an API without a node) answers
// it and describes the answer.
func answer(t *testing.T, node *host.Node, err error, started, probe bool, seen answered) string {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "method" || a.Key == "path" {
				return slog.Attr{}
			}
			return a
		},
	}))
	a := &API{log: log}
	if node != nil {
		a = New(node, Config{Logger: log})
	}
	r := httptest.NewRequest(http.MethodPut, "/v1/kv/k", nil)
	if probe {
		r = httptest.NewRequest(http.MethodGet, "/readyz", nil)
		r.Pattern = "GET /readyz"
	}
	rec := httptest.NewRecorder()
	var w http.ResponseWriter = rec
	if started {
		w = &statusWriter{ResponseWriter: rec, req: r, api: a, code: http.StatusOK}
	}
	aborted := func() (aborted bool) {
		defer func() {
			if p := recover(); p != nil {
				if p != http.ErrAbortHandler {
					panic(p)
				}
				aborted = true
			}
		}()
		a.writeError(w, r, err)
		return false
	}()

	var out strings.Builder
	if aborted {
		out.WriteString("connection aborted (http.ErrAbortHandler), nothing written\n")
	} else {
		res := rec.Result()
		fmt.Fprintf(&out, "%s\n", res.Status)
		for _, k := range slices.Sorted(maps.Keys(res.Header)) {
			for _, v := range res.Header[k] {
				fmt.Fprintf(&out, "%s: %s\n", k, v)
			}
		}
		body := rec.Body.String()
		out.WriteString(body)
		var parsed struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if jerr := json.Unmarshal([]byte(body), &parsed); jerr != nil || parsed.Error.Code == "" || parsed.Error.Message == "" {
			t.Errorf("the body %q is not a JSON error with a code and a message: %v", body, jerr)
		}
		seen[fmt.Sprintf("%d %s", res.StatusCode, parsed.Error.Code)] = true
	}
	for _, l := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
		if l != "" {
			out.WriteString("logged: " + l + "\n")
		}
	}
	return out.String()
}

// startErrorCluster starts a cluster of n nodes, which publish their API
// addresses if publish is set, and returns its members by role.
func startErrorCluster(t *testing.T, n int, publish bool) map[string]*host.Node {
	c := cluster.Start(t, cluster.Options{Nodes: n, Configure: func(cfg *host.Config) {
		if n > 1 {
			tolerant(cfg) // no leader change in the middle of the script
		}
		if publish {
			cfg.APIAddress = "http://" + cfg.NodeID + ".test:8080"
		}
	}})
	l := c.Leader()
	nodes := map[string]*host.Node{"leader": l.Node}
	for _, f := range c.Followers() {
		nodes["follower"] = f.Node
	}
	// The addresses are published through the log: wait until every node
	// has applied the leader's.
	for _, m := range c.Members {
		cluster.Poll(t, 30*time.Second, func() bool {
			id, _ := m.Node.Leader()
			return id == l.ID && (m.Node.LeaderAPIAddress() != "") == publish
		}, "%s does not know the leader or its API address", m.ID)
	}
	return nodes
}

// failingSince is the variable part of a degraded answer: the failed log
// write (its path and the store's wording) and since when it fails.
var failingSince = regexp.MustCompile(`(cannot write its Raft log: )[^"]*( \(failing since )[0-9TZ:-]+\)`)

// startFullDiskNode starts a single node whose data directory is on a
// small tmpfs, fills the tmpfs, and writes until the node's Raft log
// writes fail (Node.Degraded). The node is then "leader" to the scripts,
// whatever Raft makes of it meanwhile: whether it still leads, has stepped
// down, or cannot elect itself, its not_leader and no_leader answers must
// read degraded (writeError).
func startFullDiskNode(t *testing.T) map[string]*host.Node {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=32m,mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { // registered before the node's: runs after its Close
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	c := cluster.Start(t, cluster.Options{Nodes: 1, Configure: func(cfg *host.Config) {
		cfg.DataDir = filepath.Join(mnt, cfg.NodeID)
	}})
	n := c.Leader().Node
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	for chunk := make([]byte, 64<<10); ; {
		if _, err := filler.Write(chunk); err != nil {
			break // ENOSPC: the node's next log write fails too
		}
	}
	value := strings.Repeat("v", 4096)
	for i := 0; n.Degraded() == ""; i++ {
		if i == 1000 {
			t.Fatal("1000 writes on a full disk, and the node's log writes do not fail")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, _ = n.Apply(ctx, host.DefaultPluginName, kvstore.Command{Op: kvstore.OpSet, Key: []byte(fmt.Sprint("k", i)), Value: []byte(value)}.AppendMsgpack(nil))
		cancel()
	}
	return map[string]*host.Node{"leader": n}
}

// evaluator evaluates the Go expressions that name errors in the scripts:
// host sentinels (host.ErrNotLeader), context.DeadlineExceeded and
// context.Canceled, this package's errUnauthorized, badRequest(...),
// tooLarge(...) and unsupportedMedia(...), fmt.Errorf, errors.New and
// errors.Join, &abi.Error{...}, abi.Result{...}.Err(), abi.Code(n),
// abi.Code constants, &http.MaxBytesError{...}, string and integer literals.
type evaluator struct {
	sentinels map[string]error
	named     map[string]bool
}

func (ev *evaluator) parse(src string) (error, error) {
	x, err := parser.ParseExpr(src)
	if err != nil {
		return nil, err
	}
	v, err := ev.eval(x)
	if err != nil {
		return nil, err
	}
	e, ok := v.(error)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not an error", src, v)
	}
	return e, nil
}

var abiCodes = map[string]abi.Code{
	"CodeOK": abi.CodeOK, "CodeBadRequest": abi.CodeBadRequest, "CodeNotFound": abi.CodeNotFound,
	"CodeConflict": abi.CodeConflict, "CodeTooLarge": abi.CodeTooLarge, "CodeInternal": abi.CodeInternal,
	"CodeTrap": abi.CodeTrap, "CodeNoResult": abi.CodeNoResult, "CodeReadOnly": abi.CodeReadOnly,
	"CodeOutOfFuel": abi.CodeOutOfFuel,
}

func (ev *evaluator) eval(x ast.Expr) (any, error) {
	switch x := x.(type) {
	case *ast.ParenExpr:
		return ev.eval(x.X)
	case *ast.BasicLit:
		switch x.Kind {
		case token.STRING:
			return strconv.Unquote(x.Value)
		case token.INT:
			return strconv.ParseInt(x.Value, 0, 64)
		}
	case *ast.Ident:
		if x.Name == "errUnauthorized" {
			return errUnauthorized, nil
		}
	case *ast.SelectorExpr:
		name := exprString(x)
		if e, ok := ev.sentinels[name]; ok {
			ev.named[name] = true
			return e, nil
		}
		switch name {
		case "context.DeadlineExceeded":
			return context.DeadlineExceeded, nil
		case "context.Canceled":
			return context.Canceled, nil
		}
		if c, ok := abiCodes[strings.TrimPrefix(name, "abi.")]; ok && strings.HasPrefix(name, "abi.") {
			return c, nil
		}
	case *ast.UnaryExpr:
		if lit, ok := x.X.(*ast.CompositeLit); ok && x.Op == token.AND {
			v, err := ev.eval(lit)
			switch v := v.(type) {
			case abi.Error:
				return &v, err
			case http.MaxBytesError:
				return &v, err
			}
			return nil, fmt.Errorf("&%s: not an error type", exprString(lit.Type))
		}
	case *ast.CompositeLit:
		fields := map[string]any{}
		for _, el := range x.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				return nil, fmt.Errorf("%s: name the fields", exprString(x.Type))
			}
			v, err := ev.eval(kv.Value)
			if err != nil {
				return nil, err
			}
			fields[exprString(kv.Key)] = v
		}
		switch exprString(x.Type) {
		case "abi.Error":
			code, _ := asCode(fields["Code"])
			msg, _ := fields["Message"].(string)
			return abi.Error{Code: code, Message: msg}, nil
		case "abi.Result":
			code, _ := asCode(fields["Code"])
			data, _ := fields["Data"].(string)
			return abi.Result{Code: code, Data: []byte(data)}, nil
		case "http.MaxBytesError":
			limit, _ := fields["Limit"].(int64)
			return http.MaxBytesError{Limit: limit}, nil
		}
	case *ast.CallExpr:
		var args []any
		for _, a := range x.Args {
			v, err := ev.eval(a)
			if err != nil {
				return nil, err
			}
			args = append(args, v)
		}
		if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Err" && len(args) == 0 {
			v, err := ev.eval(sel.X)
			if r, ok := v.(abi.Result); ok {
				return r.Err(), err
			}
		}
		str := func(i int) string { s, _ := args[i].(string); return s }
		switch fn := exprString(x.Fun); {
		case fn == "abi.Code" && len(args) == 1:
			return asCode(args[0])
		case fn == "fmt.Errorf" && len(args) >= 1:
			return fmt.Errorf(str(0), args[1:]...), nil
		case fn == "errors.New" && len(args) == 1:
			return errors.New(str(0)), nil
		case fn == "errors.Join":
			var errs []error
			for _, a := range args {
				e, _ := a.(error)
				errs = append(errs, e)
			}
			return errors.Join(errs...), nil
		case fn == "badRequest" && len(args) >= 1:
			return badRequest(str(0), args[1:]...), nil
		case fn == "tooLarge" && len(args) >= 1:
			return tooLarge(str(0), args[1:]...), nil
		case fn == "unsupportedMedia" && len(args) == 2:
			return unsupportedMedia(str(0), str(1)), nil
		}
	}
	return nil, fmt.Errorf("cannot evaluate %s", exprString(x))
}

func asCode(v any) (abi.Code, error) {
	switch v := v.(type) {
	case abi.Code:
		return v, nil
	case int64:
		return abi.Code(v), nil
	}
	return 0, fmt.Errorf("%v is not a code", v)
}

func exprString(x ast.Expr) string {
	switch x := x.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	}
	return fmt.Sprintf("%T", x)
}

// hostErrorNames returns the exported Err variables of package host, read
// from its source (the parent directory).
func hostErrorNames(t *testing.T) []string {
	files, err := filepath.Glob("../*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("package host's source: %v", err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
						names = append(names, "host."+n.Name)
					}
				}
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d errors in package host: %v", len(names), names)
	}
	return names
}

// checkErrorDocs holds docs/api.md's "Errors" section to the mapping: every
// status and code the scripts answered is in its table and every row of the
// table is answered by a script (or by the router or body reader, listed
// below); its line on plugin result codes agrees with classify.
func checkErrorDocs(t *testing.T, seen answered) {
	b, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## Errors\n")
	if start < 0 {
		t.Fatal(`docs/api.md has no "## Errors" section`)
	}
	section := doc[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}

	// The table: | status | `code` / `code` | when |.
	documented := answered{}
	row := regexp.MustCompile("(?m)^\\| (\\d{3}) \\| ([^|]*)\\|")
	codeRe := regexp.MustCompile("`([a-z_]+)`")
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		for _, c := range codeRe.FindAllStringSubmatch(m[2], -1) {
			documented[m[1]+" "+c[1]] = true
		}
	}
	if len(documented) < 15 {
		t.Fatalf("read only %d status/code pairs from docs/api.md's error table: %v", len(documented), documented)
	}
	// Answered outside this mapping, by the code that finds them.
	elsewhere := map[string]string{
		"405 method_not_allowed": "the router (api.go)",
		"408 request_timeout":    "the body reader (body.go)",
	}
	for _, p := range slices.Sorted(maps.Keys(seen)) {
		if !documented[p] {
			t.Errorf("testdata/errors answers %s, which docs/api.md's error table does not list", p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(documented)) {
		if !seen[p] && elsewhere[p] == "" {
			t.Errorf("docs/api.md's error table lists %s, which no case in testdata/errors answers", p)
		}
	}

	// The line "Plugin result codes map as: 1 `bad_request` 400, ...,
	// 5 `internal` and 64–255 `plugin_error` 422, ..., other codes
	// `internal` 500."
	i := strings.Index(section, "Plugin result codes map as:")
	if i < 0 {
		t.Fatal(`docs/api.md's "Errors" has no "Plugin result codes map as:"`)
	}
	line := section[i+len("Plugin result codes map as:"):]
	line = strings.Join(strings.Fields(line[:strings.Index(line, ".\n")]), " ")
	want := map[abi.Code]string{} // code → "status code"
	other := ""
	item := regexp.MustCompile("^(.*)`([a-z_]+)` (\\d{3})$")
	num := regexp.MustCompile(`(\d+)(?:–(\d+))?`)
	for _, part := range strings.Split(line, ", ") {
		m := item.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			t.Fatalf("cannot read %q in docs/api.md's plugin result codes", part)
		}
		answer := m[3] + " " + m[2]
		if strings.HasPrefix(m[1], "other codes") {
			other = answer
			continue
		}
		for _, n := range num.FindAllStringSubmatch(m[1], -1) {
			lo, _ := strconv.Atoi(n[1])
			hi := lo
			if n[2] != "" {
				hi, _ = strconv.Atoi(n[2])
			}
			for c := lo; c <= hi; c++ {
				want[abi.Code(c)] = answer
			}
		}
	}
	if other == "" || len(want) < 150 {
		t.Fatalf("read %d codes and other=%q from docs/api.md's plugin result codes", len(want), other)
	}
	for c := abi.Code(1); c <= 300; c++ {
		e := classify(&abi.Error{Code: c, Message: "m"})
		got := fmt.Sprintf("%d %s", e.status, e.code)
		w, ok := want[c]
		if !ok {
			w = other
		}
		if got != w {
			t.Errorf("plugin result code %d answers %s; docs/api.md says %s", c, got, w)
		}
	}
}

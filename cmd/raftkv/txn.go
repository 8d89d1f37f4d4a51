package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

const txnSummary = `Run operations atomically: all succeed or none is applied. Operations are words:

  set KEY VALUE          write KEY
  delete KEY             delete KEY
  cas KEY VERSION VALUE  write KEY only if its version is VERSION (0: only if absent)

e.g. raftkv txn set a 1 delete b cas c 0 x. With --file (- for standard input) the
operations are the JSON body of POST /v1/txn: {"ops":[{"op":"SET","key":"a","value":"1"}, ...]}.`

func runTxn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("txn", "OP... | --file F [flags]", txnSummary, stdout)
	cf := addClientFlags(fs)
	file := fs.String("file", "", "read the JSON body from this file (- for standard input)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	var body json.RawMessage
	var ops []map[string]any
	switch {
	case *file != "" && len(pos) > 0:
		return usagef("give operations as words or --file, not both")
	case *file != "":
		var data []byte
		if *file == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		var parsed struct {
			Ops []map[string]any `json:"ops"`
		}
		if err := json.Unmarshal(data, &parsed); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		body, ops = data, parsed.Ops
	default:
		if ops, err = parseTxnWords(pos); err != nil {
			return err
		}
		body, _ = json.Marshal(map[string]any{"ops": ops})
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var out struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/txn", nil, body, &out); err != nil {
		return err
	}
	if cf.json {
		if out.Results == nil {
			out.Results = []json.RawMessage{}
		}
		return printJSON(stdout, out)
	}
	for i, r := range out.Results {
		desc := fmt.Sprintf("ops[%d]", i)
		if i < len(ops) {
			desc = fmt.Sprintf("%s %v %v", desc, ops[i]["op"], opKey(ops[i]))
		}
		fmt.Fprintf(stdout, "%s: %s\n", desc, r)
	}
	return nil
}

// opKey returns an operation's key for a summary line (printable: quoted
// when it is not plain text).
func opKey(op map[string]any) string {
	k, _ := op["key"].(string)
	b64, _ := op["key_b64"].(string)
	return printable(decodeB64(k, b64))
}

// putBytes sets op[field] to s, or op[field+"_b64"] to its base64 when s is
// not UTF-8: a JSON string would carry U+FFFD in place of the bytes that are
// not, and the operation would write or test another key or value.
func putBytes(op map[string]any, field, s string) {
	if utf8.ValidString(s) {
		op[field] = s
	} else {
		op[field+"_b64"] = base64.StdEncoding.EncodeToString([]byte(s))
	}
}

// parseTxnWords turns "set a 1 delete b cas c 0 x" into JSON ops.
func parseTxnWords(words []string) ([]map[string]any, error) {
	if len(words) == 0 {
		return nil, usagef("no operations")
	}
	var ops []map[string]any
	for i := 0; i < len(words); {
		need := map[string]int{"set": 2, "delete": 1, "cas": 3}
		op := strings.ToLower(words[i])
		n, ok := need[op]
		if !ok {
			return nil, usagef("ops[%d]: unknown operation %q (want set, delete or cas)", len(ops), words[i])
		}
		if i+n >= len(words) {
			return nil, usagef("ops[%d]: %s takes %d arguments", len(ops), op, n)
		}
		a := words[i+1 : i+1+n]
		o := map[string]any{"op": strings.ToUpper(op)}
		switch op {
		case "set":
			putBytes(o, "key", a[0])
			putBytes(o, "value", a[1])
		case "delete":
			putBytes(o, "key", a[0])
		case "cas":
			v, err := strconv.ParseUint(a[1], 10, 64)
			if err != nil {
				return nil, usagef("ops[%d]: cas VERSION %q is not a non-negative integer", len(ops), a[1])
			}
			putBytes(o, "key", a[0])
			putBytes(o, "value", a[2])
			o["version"] = v
		}
		ops = append(ops, o)
		i += 1 + n
	}
	return ops, nil
}

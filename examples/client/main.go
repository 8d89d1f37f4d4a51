// Command client shows how a program talks to raftkv over HTTP, with nothing
// but net/http and a MsgPack library:
//
//  1. the RaftKV seed's flow: a MsgPack SET, GET and DELETE through
//     /insert-val and /get-val (what the seed's Python test client did);
//  2. the v1 JSON API: a write, reads at each consistency level, a
//     compare-and-set conflict, a transaction and a prefix listing;
//  3. a command and a query sent to the KV plugin as MsgPack.
//
// Start a node (make run) and run it:
//
//	go run ./examples/client -addr http://127.0.0.1:8080
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func main() {
	addr := flag.String("addr", "http://127.0.0.1:8080", "HTTP address of any raftkv node")
	token := flag.String("token", os.Getenv("RAFTKV_TOKEN"), "bearer token, if the cluster requires one")
	flag.Parse()
	c := &client{base: strings.TrimSuffix(*addr, "/"), token: *token, hc: &http.Client{Timeout: 10 * time.Second}}
	if err := run(os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// run walks through the API and prints what it sees.
func run(w io.Writer, c *client) error {
	// 1. The seed's MsgPack flow.
	set, _ := msgpack.Marshal(map[string]string{"op": "SET", "key": "hello", "value": "world"})
	status, body, err := c.do("POST", "/insert-val", set, "application/msgpack")
	if err != nil || status != 200 {
		return fmt.Errorf("insert-val SET: %d %s %v", status, body, err)
	}
	fmt.Fprintf(w, "insert-val SET hello=world: %s\n", body)
	status, body, err = c.do("GET", "/get-val?key=hello", nil, "")
	if err != nil || status != 200 {
		return fmt.Errorf("get-val: %d %s %v", status, body, err)
	}
	fmt.Fprintf(w, "get-val hello: %s\n", body)
	del, _ := msgpack.Marshal(map[string]string{"op": "DELETE", "key": "hello", "value": ""})
	if status, body, err = c.do("POST", "/insert-val", del, "application/msgpack"); err != nil || status != 200 {
		return fmt.Errorf("insert-val DELETE: %d %s %v", status, body, err)
	}
	fmt.Fprintf(w, "insert-val DELETE hello: %s\n", body)
	status, _, err = c.do("GET", "/get-val?key=hello", nil, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "get-val hello after DELETE: %d\n", status)

	// 2. The v1 JSON API. Keys are percent-encoded in paths.
	var put struct{ Version uint64 }
	if err := c.json("PUT", "/v1/kv/"+url.PathEscape("users/ada"), []byte(`{"name":"Ada"}`), &put); err != nil {
		return err
	}
	fmt.Fprintln(w, "PUT users/ada: a version")
	for _, level := range []string{"stale", "leader", "linearizable"} {
		status, body, err := c.do("GET", "/v1/kv/users%2Fada?consistency="+level, nil, "")
		if err != nil || status != 200 {
			return fmt.Errorf("GET at %s: %d %s %v", level, status, body, err)
		}
		fmt.Fprintf(w, "GET users/ada (%s): %s\n", level, body)
	}
	// Compare-and-set: version 0 means "only if absent", so this conflicts.
	err = c.json("PUT", "/v1/kv/users%2Fada?cas=0", []byte("again"), nil)
	var apiErr *apiError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("CAS on an existing key: %v", err)
	}
	fmt.Fprintf(w, "PUT users/ada?cas=0: %d %s\n", apiErr.Status, apiErr.Code)
	if err := c.json("PUT", fmt.Sprintf("/v1/kv/users%%2Fada?cas=%d", put.Version), []byte(`{"name":"Ada L."}`), nil); err != nil {
		return err
	}
	fmt.Fprintln(w, "PUT users/ada with its current version: ok")
	txn := `{"ops":[{"op":"SET","key":"users/bob","value":"{}"},{"op":"CAS","key":"users/eve","value":"{}","version":0}]}`
	var res struct{ Results []json.RawMessage }
	if err := c.json("POST", "/v1/txn", []byte(txn), &res); err != nil {
		return err
	}
	fmt.Fprintf(w, "txn: %d results\n", len(res.Results))
	var list struct {
		Items []struct{ Key, Value string }
	}
	if err := c.json("GET", "/v1/kv?prefix=users/&limit=10", nil, &list); err != nil {
		return err
	}
	for _, it := range list.Items {
		fmt.Fprintf(w, "list users/: %s = %s\n", it.Key, it.Value)
	}

	// 3. The KV plugin's own protocol, as MsgPack both ways.
	q, _ := msgpack.Marshal(map[string]string{"op": "GET", "key": "users/bob"})
	req, _ := http.NewRequest("POST", c.base+"/v1/plugins/kv/queries?consistency=linearizable", bytes.NewReader(q))
	req.Header.Set("Content-Type", "application/msgpack")
	req.Header.Set("Accept", "application/msgpack")
	status, body, err = c.send(req)
	if err != nil || status != 200 {
		return fmt.Errorf("plugin query: %d %s %v", status, body, err)
	}
	var got struct {
		Value   []byte `msgpack:"value"`
		Version uint64 `msgpack:"version"`
	}
	if err := msgpack.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("plugin query answer: %w", err)
	}
	fmt.Fprintf(w, "plugin query GET users/bob: %s\n", got.Value)
	return nil
}

// client is a minimal raftkv HTTP client.
type client struct {
	base, token string
	hc          *http.Client
}

func (c *client) do(method, path string, body []byte, contentType string) (int, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) (int, []byte, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// apiError is raftkv's error answer: {"error":{"code":…,"message":…}}.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// json sends body and decodes a JSON answer into out; a non-2xx answer is an
// *apiError.
func (c *client) json(method, path string, body []byte, out any) error {
	status, data, err := c.do(method, path, body, "")
	if err != nil {
		return err
	}
	if status/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(data, &e)
		return &apiError{status, e.Error.Code, e.Error.Message}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Command client shows how a Go program uses a raftkv cluster through the
// client package (github.com/raftkv/raftkv/client), without HTTP code of its
// own:
//
//  1. the RaftKV seed's flow: a MsgPack SET, GET and DELETE through
//     /insert-val and /get-val (what the seed's Python test client did),
//     as raw calls (Client.Do) that still get the package's failover;
//  2. the key-value API: a write, reads at each consistency level, a
//     compare-and-set conflict, a transaction and a prefix listing;
//  3. a command and a query sent to the KV plugin as MsgPack.
//
// Start a cluster (examples/cluster/start.sh, or make run) and run it with
// any of its nodes:
//
//	go run ./examples/client -endpoints http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082
package main

import (
	"context"
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

	"github.com/raftkv/raftkv/client"
)

func main() {
	endpoints := flag.String("endpoints", "http://127.0.0.1:8080", "HTTP addresses of raftkv nodes, comma-separated")
	token := flag.String("token", os.Getenv("RAFTKV_TOKEN"), "bearer token, if the cluster requires one")
	flag.Parse()
	c, err := client.New(client.Config{Endpoints: strings.Split(*endpoints, ","), Token: *token})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// run walks through the API and prints what it sees.
func run(ctx context.Context, w io.Writer, c *client.Client) error {
	// 1. The seed's MsgPack flow, as raw calls.
	seed := func(op, key, value string) error {
		body, _ := msgpack.Marshal(map[string]string{"op": op, "key": key, "value": value})
		resp, err := c.Do(ctx, client.Request{Method: http.MethodPost, Path: "/insert-val", Body: body,
			ContentType: "application/msgpack", Write: true, Leader: true})
		if err != nil {
			return fmt.Errorf("insert-val %s: %w", op, err)
		}
		defer resp.Body.Close()
		ok, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(w, "insert-val %s %s: %s\n", op, key, ok)
		return nil
	}
	getVal := func() (string, error) {
		resp, err := c.Do(ctx, client.Request{Method: http.MethodGet, Path: "/get-val", Query: url.Values{"key": {"hello"}}, Leader: true})
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if err := seed("SET", "hello", "world"); err != nil {
		return err
	}
	v, err := getVal()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "get-val hello: %s\n", v)
	if err := seed("DELETE", "hello", ""); err != nil {
		return err
	}
	_, err = getVal()
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("get-val after DELETE: %v", err)
	}
	fmt.Fprintf(w, "get-val hello after DELETE: %d\n", apiErr.Status)

	// 2. The key-value API.
	version, err := c.Put(ctx, "users/ada", []byte(`{"name":"Ada"}`))
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "PUT users/ada: a version")
	for _, level := range []client.Consistency{client.Stale, client.Leader, client.Linearizable} {
		it, err := c.Get(ctx, "users/ada", client.WithConsistency(level))
		if errors.Is(err, client.ErrNotFound) && level == client.Stale {
			// A stale read may come from a node that has not applied the
			// write yet: that is what stale means.
			fmt.Fprintf(w, "GET users/ada (%s): not applied yet on that node\n", level)
			continue
		} else if err != nil {
			return fmt.Errorf("GET at %s: %w", level, err)
		}
		fmt.Fprintf(w, "GET users/ada (%s): %s\n", level, it.Value)
	}
	// Compare-and-set: version 0 means "only if absent", so this conflicts.
	_, err = c.CAS(ctx, "users/ada", 0, []byte("again"))
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("CAS on an existing key: %v", err)
	}
	fmt.Fprintf(w, "PUT users/ada?cas=0: %d %s\n", apiErr.Status, apiErr.Code)
	if _, err := c.CAS(ctx, "users/ada", version, []byte(`{"name":"Ada L."}`)); err != nil {
		return err
	}
	fmt.Fprintln(w, "PUT users/ada with its current version: ok")
	res, err := c.Txn(ctx, []client.Op{client.SetOp("users/bob", []byte("{}")), client.CASOp("users/eve", 0, []byte("{}"))})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "txn: %d results\n", len(res))
	items, err := c.ListAll(ctx, client.ListRequest{Prefix: "users/"}, 10)
	if err != nil {
		return err
	}
	for _, it := range items {
		fmt.Fprintf(w, "list users/: %s = %s\n", it.Key, it.Value)
	}

	// 3. The KV plugin's own protocol, as MsgPack both ways.
	q, _ := msgpack.Marshal(map[string]string{"op": "GET", "key": "users/bob"})
	answer, err := c.Query(ctx, "kv", q, client.WithConsistency(client.Linearizable))
	if err != nil {
		return fmt.Errorf("plugin query: %w", err)
	}
	var got struct {
		Value   []byte `msgpack:"value"`
		Version uint64 `msgpack:"version"`
	}
	if err := msgpack.Unmarshal(answer, &got); err != nil {
		return fmt.Errorf("plugin query answer: %w", err)
	}
	fmt.Fprintf(w, "plugin query GET users/bob: %s\n", got.Value)
	return nil
}

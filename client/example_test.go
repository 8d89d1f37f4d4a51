package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/raftkv/raftkv/client"
)

// endpoints holds the nodes' HTTP addresses, e.g.
// []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"}.
func Example() {
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if _, err := c.Put(ctx, "example/greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	item, err := c.Get(ctx, "example/greeting", client.WithConsistency(client.Linearizable))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s = %s\n", item.Key, item.Value)
	// Output: example/greeting = hello
}

func ExampleClient_CAS() {
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	v, err := c.CAS(ctx, "example/counter", 0, []byte("1")) // only if absent
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CAS(ctx, "example/counter", v+1000, []byte("2")) // a stale version
	fmt.Println("conflict:", errors.Is(err, client.ErrConflict))
	_, err = c.CAS(ctx, "example/counter", v, []byte("2"))
	fmt.Println("updated:", err == nil)
	// Output:
	// conflict: true
	// updated: true
}

func ExampleClient_Get_notFound() {
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Get(context.Background(), "example/absent")
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code, client.IsNotFound(err))
	}
	// Output: 404 not_found true
}

func ExampleClient_Txn() {
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	results, err := c.Txn(ctx, []client.Op{
		client.SetOp("example/txn/a", []byte("1")),
		client.SetOp("example/txn/b", []byte{0xff, 0x00}), // any bytes
		client.DeleteOp("example/txn/none"),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(results), results[2].Deleted)
	items, err := c.ListAll(ctx, client.ListRequest{Prefix: "example/txn/"}, 0, client.WithConsistency(client.Linearizable))
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range items {
		fmt.Printf("%s %q\n", it.Key, it.Value)
	}
	// Output:
	// 3 false
	// example/txn/a "1"
	// example/txn/b "\xff\x00"
}

func ExampleClient_CommandJSON() {
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	// The kv plugin's own commands (see plugins/kv), as JSON.
	var set struct {
		Version uint64 `json:"version"`
	}
	if err := c.CommandJSON(ctx, "kv", map[string]any{"op": "SET", "key": "example/plugin", "value": "v"}, &set); err != nil {
		log.Fatal(err)
	}
	var got map[string]any
	if err := c.QueryJSON(ctx, "kv", map[string]any{"op": "GET", "key": "example/plugin"}, &got, client.WithConsistency(client.Leader)); err != nil {
		log.Fatal(err)
	}
	fmt.Println(set.Version > 0, got["value"])
	// Output: true v
}

func ExampleClient_Cluster() {
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	info, err := c.Cluster(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	voters := 0
	for _, m := range info.Members {
		if m.Suffrage == "voter" {
			voters++
		}
	}
	fmt.Println("voters:", voters, "leader known:", info.Leader != "")
	// Output: voters: 3 leader known: true
}

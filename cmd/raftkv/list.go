package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
)

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list", "[--prefix P | --start S --end E] [--limit N] [flags]",
		"List keys in key order with their versions and values, following pages until --limit items\nor the end of the range.", stdout)
	cf := addClientFlags(fs)
	prefix := fs.String("prefix", "", "only keys starting with this")
	start := fs.String("start", "", "only keys >= this")
	end := fs.String("end", "", "only keys < this")
	limit := fs.Int("limit", 0, "at most this many items (0: all)")
	pageSize := fs.Int("page-size", 1000, "items per request (1-10000)")
	consistency := fs.String("consistency", "", "stale, leader or linearizable (default: the node's, leader)")
	keysOnly := fs.Bool("keys-only", false, "print keys only")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, 0); err != nil {
		return err
	}
	if *pageSize < 1 || *pageSize > 10000 {
		return usagef("--page-size must be in [1, 10000]")
	}
	if *limit < 0 {
		return usagef("--limit must be 0 (all) or positive, got %d", *limit)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	all := listAnswer{Items: []kvItem{}}
	next := *start
	for {
		n := *pageSize
		if *limit > 0 {
			n = min(n, *limit-len(all.Items))
		}
		q := url.Values{"limit": {strconv.Itoa(n)}}
		for k, v := range map[string]string{"prefix": *prefix, "start": next, "end": *end, "consistency": *consistency} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var page listAnswer
		if err := c.doJSON(ctx, http.MethodGet, "/v1/kv", q, nil, &page); err != nil {
			return err
		}
		all.Items = append(all.Items, page.Items...)
		all.Next, all.NextB64 = page.Next, page.NextB64
		if page.Next == "" && page.NextB64 == "" {
			break
		}
		if *limit > 0 && len(all.Items) >= *limit {
			break
		}
		next = string(decodeB64(page.Next, page.NextB64))
	}
	if cf.json {
		return printJSON(stdout, all)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, it := range all.Items {
		if *keysOnly {
			fmt.Fprintln(tw, printable(it.key()))
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", printable(it.key()), it.Version, printable(it.value()))
		}
	}
	if all.Next != "" || all.NextB64 != "" {
		fmt.Fprintf(tw, "… more from %s\n", printable(decodeB64(all.Next, all.NextB64)))
	}
	return tw.Flush()
}

// listAnswer is the answer of GET /v1/kv.
type listAnswer struct {
	Items   []kvItem `json:"items"`
	Next    string   `json:"next,omitempty"`
	NextB64 string   `json:"next_b64,omitempty"`
}

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/raftkv/raftkv/host/transport"
	"github.com/raftkv/raftkv/host/trust"
)

func runKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("key", "[--data-dir D] [--node-id ID]",
		"Create the node's ed25519 key in the data directory if it is absent, and print the node's trust line\n(\"ssh-ed25519 AAAA… <node-id>\"), to authorise it with 'raftkv trust' or in authorized_keys files.", stdout)
	nodeID := fs.String("node-id", "", "the node's ID (default: the short host name, or node1)")
	dataDir := fs.String("data-dir", "", "the node's data directory (default ./raftkv-data/<node-id>)")
	fs.bindAllEnv(seedEnv)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 0, 0); err != nil {
		return err
	}
	if *nodeID == "" {
		*nodeID = defaultNodeID()
	}
	if err := trust.ValidateNodeID(*nodeID); err != nil {
		return usagef("--node-id: %v", err)
	}
	if *dataDir == "" {
		*dataDir = defaultDataDir(*nodeID)
	}
	signer, err := transport.LoadOrCreateKey(*dataDir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, trust.TrustLine(signer.PublicKey(), *nodeID))
	return err
}

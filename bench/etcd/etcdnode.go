package main

import (
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// etcdMember is one node of the etcd cluster: its name and loopback IP.
type etcdMember struct {
	name, ip string
}

func (m etcdMember) peerURL() string   { return "http://" + m.ip + ":2380" }
func (m etcdMember) clientURL() string { return "http://" + m.ip + ":2379" }

// initialCluster is etcd's --initial-cluster value for members.
func initialCluster(members []etcdMember) string {
	parts := make([]string, len(members))
	for i, m := range members {
		parts[i] = m.name + "=" + m.peerURL()
	}
	return strings.Join(parts, ",")
}

// runEtcdNode is the hidden `etcd-node NAME IP DIR INITIAL-CLUSTER` command:
// one embedded etcd server with etcd's defaults (fsync on, snapshot every
// 10000 entries in v3.6), logging errors only, until SIGTERM or SIGINT.
// It prints "ready" on standard output once the server serves clients.
func runEtcdNode(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("etcd-node: want NAME IP DIR INITIAL-CLUSTER, got %q", args)
	}
	m := etcdMember{name: args[0], ip: args[1]}
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = args[2]
	peer, err := url.Parse(m.peerURL())
	if err != nil {
		return err
	}
	client, err := url.Parse(m.clientURL())
	if err != nil {
		return err
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.InitialCluster = args[3]
	cfg.InitialClusterToken = "raftkv-bench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"stderr"}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcd-node %s: start: %w", m.name, err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd-node %s: %w", m.name, err)
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("etcd-node %s: not ready after 2m", m.name)
	}
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd-node %s: %w", m.name, err)
	}
}

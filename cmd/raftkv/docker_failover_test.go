package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kvclient "github.com/raftkv/raftkv/client"
)

// TestDockerFailover runs examples/docker as an operator would — the image
// built by examples/docker/build.sh, the Compose file with its port
// overrides — and checks, through the client package with every node's
// address: writes and reads across nodes, the image's HEALTHCHECK reporting
// healthy, the leader's container killed (docker kill), a new leader and
// writes going on, the container restarted and rejoining with its data.
// Needs Docker and docker-compose (scripts/deps.sh): only with
// RAFTKV_DOCKER_TEST=1 (make test-docker, run by .ci/run).
func TestDockerFailover(t *testing.T) {
	if os.Getenv("RAFTKV_DOCKER_TEST") != "1" {
		t.Skip("set RAFTKV_DOCKER_TEST=1 to run the Docker tests (make test-docker)")
	}
	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tag := fmt.Sprintf("raftkv-failover:%d", rand.Uint32())
	run(nil, "sh", "../../examples/docker/build.sh", tag)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })

	project := fmt.Sprintf("raftkvfo%d", rand.Uint32())
	// The token build.sh generated (or kept), which the Compose file hands
	// to the nodes by default: private directory, one 64-hex-digit token.
	tokenFile, _ := filepath.Abs("../../examples/docker/secrets/token")
	token, err := kvclient.ReadTokenFile(tokenFile)
	if err != nil {
		t.Fatalf("build.sh's token: %v", err)
	}
	fi, err := os.Stat(filepath.Dir(tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || len(token) != 64 {
		t.Fatalf("build.sh's token: a %d-byte token in a directory of mode %04o", len(token), fi.Mode().Perm())
	}
	t.Setenv("RAFTKV_TOKEN_FILE", tokenFile) // for the CLI
	env := []string{"RAFTKV_IMAGE=" + tag}
	var eps []string
	for i := 1; i <= 3; i++ {
		addr := freeAddr(t, "127.0.0.1")
		env = append(env, fmt.Sprintf("RAFTKV_PORT%d=%s", i, addr[strings.LastIndex(addr, ":")+1:]))
		eps = append(eps, "http://"+addr)
	}
	composeFile, _ := filepath.Abs("../../examples/docker/docker-compose.yml")
	dc := func(args ...string) string {
		t.Helper()
		return run(env, "docker-compose", append([]string{"-p", project, "-f", composeFile}, args...)...)
	}
	t.Cleanup(func() {
		argv := []string{"-p", project, "-f", composeFile}
		if t.Failed() {
			out, _ := exec.Command("docker-compose", append(argv, "logs", "--no-color")...).CombinedOutput()
			t.Logf("compose logs:\n%s", out)
		}
		cmd := exec.Command("docker-compose", append(argv, "down", "-v", "--timeout", "20")...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	dc("up", "-d")
	container := func(node string) string {
		return strings.TrimSpace(dc("ps", "-q", node))
	}

	c, err := kvclient.New(kvclient.Config{Endpoints: eps, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	healthy := func(what string) {
		t.Helper()
		poll(t, 3*time.Minute, what, func() error {
			if r := cli("health", "--cluster", "--endpoints", strings.Join(eps, ","), "--timeout", "5s"); r.code != 0 {
				return fmt.Errorf("%s%s", r.stdout, r.stderr)
			}
			return nil
		})
	}
	healthy("the cluster up")
	// Docker's own view: the HEALTHCHECK (raftkv health, no shell in the image).
	poll(t, 2*time.Minute, "docker reports every container healthy", func() error {
		for _, n := range []string{"node1", "node2", "node3"} {
			out, err := exec.Command("docker", "inspect", "-f", "{{.State.Health.Status}}", container(n)).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "healthy" {
				return fmt.Errorf("%s: %s %v", n, out, err)
			}
		}
		return nil
	})

	for i := range 10 {
		if _, err := c.Put(ctx, fmt.Sprintf("d/%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range eps { // every node has them
		at, _ := c.At(e)
		poll(t, 30*time.Second, e+" has the writes", func() error {
			it, err := at.Get(ctx, "d/9", kvclient.WithConsistency(kvclient.Stale))
			if err != nil || string(it.Value) != "9" {
				return fmt.Errorf("%q %v", it.Value, err)
			}
			return nil
		})
	}

	// Kill the leader's container.
	leader, _, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run(nil, "docker", "kill", container(leader))
	start := time.Now()
	for i := 10; i < 20; i++ {
		putReadBack(t, ctx, c, fmt.Sprintf("d/%d", i), []byte(fmt.Sprint(i)))
	}
	t.Logf("10 writes within %v of killing the leader %s", time.Since(start).Round(time.Millisecond), leader)
	newLeader, _, err := c.Leader(ctx)
	if err != nil || newLeader == leader {
		t.Fatalf("leader after the kill: %s %v", newLeader, err)
	}
	var st []nodeStatus
	if err := json.Unmarshal([]byte(mustCLI(t, "status", "--cluster", "--json", "--endpoints", strings.Join(eps, ","))), &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st {
		if (n.NodeID == leader) != (n.Health == "unreachable") {
			t.Fatalf("status --cluster with %s killed: %+v", leader, st)
		}
	}

	// Restarted, it rejoins with its data and catches up.
	dc("start", leader)
	healthy("the killed node back")
	for _, e := range eps {
		at, _ := c.At(e)
		poll(t, 60*time.Second, e+" caught up", func() error {
			for _, k := range []string{"d/0", "d/19"} {
				if _, err := at.Get(ctx, k, kvclient.WithConsistency(kvclient.Stale)); err != nil {
					return fmt.Errorf("%s: %v", k, err)
				}
			}
			return nil
		})
	}
}

// putReadBack (as in test/system) writes a key as a program using the client package should
// when it cannot deduplicate: a write whose outcome is unknown (the node
// died holding it: a kept-alive connection to it broke after the write was
// sent) is read back before it is written again. It reports whether that
// happened. (With a cluster that deduplicates idempotency keys, the client
// retries such a write itself.)
func putReadBack(t *testing.T, ctx context.Context, c *kvclient.Client, key string, value []byte) (unknown bool) {
	t.Helper()
	_, err := c.Put(ctx, key, value)
	if errors.Is(err, kvclient.ErrUnknownOutcome) {
		unknown = true
		t.Logf("put %s: %v; reading before writing again", key, err)
		if it, gerr := c.Get(ctx, key, kvclient.WithConsistency(kvclient.Linearizable)); gerr == nil && string(it.Value) == string(value) {
			err = nil
		} else {
			_, err = c.Put(ctx, key, value)
		}
	}
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return unknown
}

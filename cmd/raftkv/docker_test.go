package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
)

// TestDockerCompose builds the FROM scratch image around a static binary,
// starts examples/docker/docker-compose.yml (the seed's 3-node layout: NODE_ID,
// BOOTSTRAP, JOIN_ADDR) and runs the seed's MsgPack flow against it, then
// restarts the bootstrap node. It needs Docker and docker-compose, so it runs
// only with RAFTKV_DOCKER_TEST=1 (make test-docker).
func TestDockerCompose(t *testing.T) {
	if os.Getenv("RAFTKV_DOCKER_TEST") != "1" {
		t.Skip("set RAFTKV_DOCKER_TEST=1 to run the Docker Compose test")
	}
	compose := "docker-compose"
	if _, err := exec.LookPath(compose); err != nil {
		compose = ""
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	composeCmd := func(args ...string) []string {
		if compose != "" {
			return append([]string{compose}, args...)
		}
		return append([]string{"docker", "compose"}, args...)
	}

	ctxDir := t.TempDir()
	run("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "raftkv"), ".")
	os.Chmod(filepath.Join(ctxDir, "raftkv"), 0o755) // the image's user runs it, whatever the umask
	dockerfile, err := os.ReadFile("../../examples/docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), dockerfile, 0o644)
	os.Mkdir(filepath.Join(ctxDir, "data"), 0o700) // the image's /data (build.sh makes it)
	tag := fmt.Sprintf("raftkv-e2e:%d", rand.Uint32())
	run("docker", "build", "-q", "-t", tag, ctxDir)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })

	project := fmt.Sprintf("raftkve2e%d", rand.Uint32())
	var ports []string
	token, tokenFile := dockerToken(t)
	t.Setenv("RAFTKV_TOKEN_FILE", tokenFile) // for the CLI
	auth := []string{"Authorization", "Bearer " + token}
	env := []string{"RAFTKV_IMAGE=" + tag, "RAFTKV_TOKEN_SECRET=" + tokenFile}
	for i := 1; i <= 3; i++ {
		addr := freeAddr(t, "127.0.0.1")
		ports = append(ports, addr[strings.LastIndex(addr, ":")+1:])
		env = append(env, fmt.Sprintf("RAFTKV_PORT%d=%s", i, ports[i-1]))
	}
	composeFile, _ := filepath.Abs("../../examples/docker/docker-compose.yml")
	dc := func(args ...string) (string, error) {
		argv := composeCmd(append([]string{"-p", project, "-f", composeFile}, args...)...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := dc("logs", "--no-color")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := dc("down", "-v", "--timeout", "20"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := dc("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	url := func(i int) string { return "http://127.0.0.1:" + ports[i] }
	ready := func() {
		for i := range ports {
			poll(t, 120*time.Second, fmt.Sprintf("node%d serving", i+1), func() error {
				r, err := doHTTP("GET", url(i)+"/v1/kv/probe?consistency=stale", nil, auth...)
				if err != nil {
					return err
				}
				if r.status != 404 || !strings.Contains(r.body, "key not found") {
					return fmt.Errorf("%d %s", r.status, r.body)
				}
				c, err := doHTTP("GET", url(i)+"/v1/cluster", nil, auth...)
				if err != nil || !strings.Contains(c.body, `"node3"`) || !strings.Contains(c.body, `"node2"`) {
					return fmt.Errorf("cluster: %v %s", err, c.body)
				}
				return nil
			})
		}
	}
	ready()

	mp := append([]string{"Content-Type", "application/msgpack"}, auth...)
	if r := mustHTTP(t, 200, "POST", url(1)+"/insert-val", msgpackBody(t, map[string]any{"op": "SET", "key": "hello", "value": "world"}), mp...); r.body != "ok" {
		t.Fatalf("insert-val: %q", r.body)
	}
	for i := range ports {
		if r := mustHTTP(t, 200, "GET", url(i)+"/get-val?key=hello", nil, auth...); r.body != "world" {
			t.Fatalf("get-val on node%d: %q", i+1, r.body)
		}
	}
	mustHTTP(t, 200, "POST", url(2)+"/insert-val", msgpackBody(t, map[string]any{"op": "DELETE", "key": "hello", "value": ""}), mp...)
	mustHTTP(t, 404, "GET", url(0)+"/get-val?key=hello", nil, auth...)
	mustCLI(t, "put", "persisted", "yes", "--addr", url(0)) // the token from RAFTKV_TOKEN_FILE

	// The deployment's defaults: the token required, only the client API
	// published and on the host's loopback only, a non-root user.
	mustHTTP(t, 401, "GET", url(0)+"/get-val?key=hello", nil)
	mustHTTP(t, 401, "POST", url(0)+"/insert-val", msgpackBody(t, map[string]any{"op": "SET", "key": "x", "value": "y"}), "Content-Type", "application/msgpack")
	for i := 1; i <= 3; i++ {
		id, err := dc("ps", "-q", fmt.Sprintf("node%d", i))
		if err != nil {
			t.Fatalf("compose ps: %v %s", err, id)
		}
		// Every published port: the API only, on 127.0.0.1 only.
		out, err := exec.Command("docker", "port", strings.TrimSpace(id)).CombinedOutput()
		if got, want := strings.TrimSpace(string(out)), "8080/tcp -> 127.0.0.1:"+ports[i-1]; err != nil || got != want {
			t.Errorf("node%d publishes %q (%v), want only %q", i, got, err, want)
		}
	}
	if out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Config.User}}", tag).CombinedOutput(); err != nil ||
		strings.TrimSpace(string(out)) != "10001:10001" {
		t.Errorf("image user %q (%v), want 10001:10001", out, err)
	}

	// node1 restarts with BOOTSTRAP=true on its existing volume: it rejoins.
	if out, err := dc("restart", "node1"); err != nil {
		t.Fatalf("restart node1: %v\n%s", err, out)
	}
	ready()
	poll(t, 30*time.Second, "node1 has its data", func() error {
		r, err := doHTTP("GET", url(0)+"/v1/kv/persisted?consistency=stale", nil, auth...)
		if err == nil && (r.status != 200 || r.body != "yes") {
			err = fmt.Errorf("%d %s", r.status, r.body)
		}
		return err
	})
}

// dockerToken writes a token file for the Compose file's secret
// (RAFTKV_TOKEN_SECRET), readable by the containers' user as build.sh makes
// it, and returns the token and the file.
func dockerToken(t *testing.T) (string, string) {
	t.Helper()
	token := fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(file, 0o644) // whatever the umask
	return token, file
}

// msgpackBody encodes v as the seed's clients do.
func msgpackBody(t *testing.T, v map[string]any) []byte {
	b, err := abi.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

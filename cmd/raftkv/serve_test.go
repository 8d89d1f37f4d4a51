package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeFlags checks flag, RAFTKV_<NAME> and seed variable precedence.
func TestServeFlags(t *testing.T) {
	t.Setenv("NODE_ID", "seed-id")
	t.Setenv("JOIN_ADDR", "node1:6000")
	t.Setenv("BOOTSTRAP", "")
	t.Setenv("RAFTKV_HTTP_ADDR", "127.0.0.9:9999")
	t.Setenv("RAFTKV_PLUGIN_MEMORY_PAGES", "100")
	o, err := parseServeFlags(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.NodeID != "seed-id" || o.Join != "node1:6000" || o.HTTPAddr != "127.0.0.9:9999" || o.Node.PluginMemoryPages != 100 {
		t.Fatalf("from the environment: %+v", o)
	}
	if o.Bootstrap.set || o.DataDir != filepath.Join("raftkv-data", "seed-id") || o.RaftAddr != "127.0.0.1:8088" || o.MgmtAddr != "127.0.0.1:6000" {
		t.Fatalf("defaults: %+v", o)
	}

	t.Setenv("RAFTKV_NODE_ID", "raftkv-id") // RAFTKV_ wins over the seed's name
	t.Setenv("BOOTSTRAP", "true")
	if o, err = parseServeFlags([]string{"--http-addr", "127.0.0.1:1"}, nil); err != nil {
		t.Fatal(err)
	}
	if o.NodeID != "raftkv-id" || o.HTTPAddr != "127.0.0.1:1" || !o.Bootstrap.set || !o.Bootstrap.value {
		t.Fatalf("precedence: %+v", o)
	}
	if o, err = parseServeFlags([]string{"--node-id=flag-id", "--bootstrap=false"}, nil); err != nil {
		t.Fatal(err)
	}
	if o.NodeID != "flag-id" || !o.Bootstrap.set || o.Bootstrap.value {
		t.Fatalf("the command line wins: %+v", o)
	}

	t.Setenv("RAFTKV_ELECTION_TIMEOUT", "soon")
	if _, err := parseServeFlags(nil, nil); err == nil || !strings.Contains(err.Error(), "RAFTKV_ELECTION_TIMEOUT") {
		t.Fatalf("a bad variable: %v", err)
	}
	t.Setenv("RAFTKV_ELECTION_TIMEOUT", "")
	for _, args := range [][]string{{"--tls-cert", "c.pem"}, {"extra"}, {"--log-level", "loud"}, {"--node-id", "has space"}} {
		if _, err := parseServeFlags(args, nil); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	// Each refused with its own reason (an address without a port was
	// called "beyond loopback", a negative body limit meant the default).
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-addr", "127.0.9.9"}, `--http-addr "127.0.9.9": missing port`},
		{[]string{"--mgmt-addr", "localhost"}, `--mgmt-addr "localhost": missing port`},
		{[]string{"--raft-addr", "127.0.0.1"}, `--raft-addr "127.0.0.1": missing port`},
		{[]string{"--max-body-bytes", "-1"}, "--max-body-bytes must be at least 1"},
		{[]string{"--max-body-bytes", "0"}, "--max-body-bytes must be at least 1"},
		{[]string{"--request-timeout", "-1s"}, "--request-timeout must be positive"},
		{[]string{"--stream-idle-timeout", "0s"}, "--stream-idle-timeout must be positive"},
	} {
		if _, err := parseServeFlags(tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestDefaultAdvertise(t *testing.T) {
	host, _ := os.Hostname()
	for in, want := range map[string]string{
		"127.0.0.1:8088": "",
		"node1:8088":     "",
		"0.0.0.0:8088":   net.JoinHostPort(host, "8088"),
		":8088":          net.JoinHostPort(host, "8088"),
		"[::]:8088":      net.JoinHostPort(host, "8088"),
	} {
		if got := defaultAdvertise(in); got != want {
			t.Errorf("defaultAdvertise(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestServeJoinTLS runs two in-process nodes serving HTTPS with a token: the
// second joins through the first's management address (host:port, so https
// because it serves TLS itself), then restarts with the same command line and
// rejoins from its data without calling join again.
func TestServeJoinTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-node cluster: a system test (make test-system runs it)")
	}
	cert, key := selfSigned(t)
	common := []string{"--tls-cert", cert, "--tls-key", key, "--ca-cert", cert, "--token", "tok"}
	a := startInProcess(t, append([]string{"--node-id", "a"}, common...)...)
	b := startInProcess(t, append([]string{"--node-id", "b", "--join", a.Mgmt}, common...)...)
	if !strings.Contains(b.Logs.String(), "joined the cluster") {
		t.Fatalf("b did not log its join:\n%s", b.Logs)
	}
	cliArgs := []string{"--addr", b.URL, "--ca-cert", cert, "--token", "tok"}
	var ms []member
	json.Unmarshal([]byte(mustCLI(t, append([]string{"members", "--json"}, cliArgs...)...)), &ms)
	if len(ms) != 2 {
		t.Fatalf("members: %+v", ms)
	}
	mustCLI(t, append([]string{"put", "k", "v"}, cliArgs...)...)
	if r := cli("get", "k", "--addr", b.URL, "--token", "tok"); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("an unknown CA must fail: %+v", r)
	}

	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	logs := len(b.Logs.String())
	b.start(t)
	restart := b.Logs.String()[logs:]
	if !strings.Contains(restart, "existing state found") || strings.Contains(restart, "joined the cluster") {
		t.Fatalf("restart logs:\n%s", restart)
	}
	poll(t, 10*time.Second, "b reads k after its restart", func() error {
		if out := mustCLI(t, append([]string{"get", "k", "--consistency", "stale"}, cliArgs...)...); out != "v\n" {
			return errorf("get k: %q", out)
		}
		return nil
	})
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "raftkv test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}

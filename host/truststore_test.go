package host_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/host/trust"
	"github.com/raftkv/raftkv/internal/cluster"
)

// trustLines returns n trust lines for fresh keys, "ssh-ed25519 AAAA… <prefix>i".
func trustLines(t testing.TB, prefix string, n int) []string {
	t.Helper()
	var lines []string
	for i := range n {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, trust.TrustLine(key, fmt.Sprintf("%s%d", prefix, i)))
	}
	return lines
}

// TestTrustCacheConcurrentWrites: trust.json is written by the FSM goroutine
// and by AcceptTrust, concurrently. Every version of the file a reader (or a
// restart after a crash) can see is a whole list, the last write has every
// line, no temporary file is left behind, and the node starts from it.
func TestTrustCacheConcurrentWrites(t *testing.T) {
	cfg := cluster.FastConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr = "n1", t.TempDir(), "127.0.0.1:"+freePort(t)
	cfg.PluginCacheDir = cluster.SharedCache(t)
	n, err := host.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())

	const writers, each = 4, 25
	var want []string
	path := filepath.Join(cfg.DataDir, "trust.json")
	var stop atomic.Bool
	var torn atomic.Value
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for !stop.Load() {
			data, err := os.ReadFile(path)
			if os.IsNotExist(err) {
				continue
			}
			var c struct{ Trust []string }
			if err == nil {
				err = json.Unmarshal(data, &c)
			}
			if err != nil {
				torn.Store(fmt.Sprintf("%v (%d bytes: %.80q)", err, len(data), data))
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		lines := trustLines(t, fmt.Sprintf("w%d-", w), each)
		want = append(want, lines...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, l := range lines {
				if err := n.AcceptTrust([]string{l}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	<-readerDone
	close(errs)
	for err := range errs {
		t.Errorf("AcceptTrust: %v", err)
	}
	if v := torn.Load(); v != nil {
		t.Fatalf("a reader saw a torn trust.json: %s", v)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Trust []string }
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("trust.json: %v", err)
	}
	for _, l := range want {
		if !slices.Contains(c.Trust, l) {
			t.Fatalf("trust.json lacks %q (a write with an older list won): %d of %d lines", l, len(c.Trust), len(want))
		}
	}
	entries, err := os.ReadDir(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "trust.json") && e.Name() != "trust.json" {
			t.Errorf("left behind: %s", e.Name())
		}
	}

	// The node starts again from the file.
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n2, err := host.New(cfg)
	if err != nil {
		t.Fatalf("restart from the trust cache: %v", err)
	}
	n2.Close(context.Background())
}

// TestTrustCacheIgnoresLeftoverTemp: a temporary file left by a crash in the
// middle of a write is neither read nor kept.
func TestTrustCacheIgnoresLeftoverTemp(t *testing.T) {
	cfg := cluster.FastConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr = "n1", t.TempDir(), "127.0.0.1:"+freePort(t)
	cfg.PluginCacheDir = cluster.SharedCache(t)
	good := `{"trust": [], "revoked": []}`
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "trust.json"), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(cfg.DataDir, "trust.json.123456.tmp")
	if err := os.WriteFile(leftover, []byte(`{"trust": ["ssh-ed25519 AAAA`), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := host.New(cfg)
	if err != nil {
		t.Fatalf("start with a leftover temporary file: %v", err)
	}
	defer n.Close(context.Background())
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover temporary file: %v", err)
	}
}

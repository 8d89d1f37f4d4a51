package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s", s1.PublicKey().Type())
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Fatalf("key file is not in OpenSSH format:\n%s", data)
	}
	pub, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil || !bytes.Equal(pk.Marshal(), s1.PublicKey().Marshal()) {
		t.Fatalf("public key file %q does not hold the key (%v)", pub, err)
	}

	// The second start loads the same key.
	s2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Fatal("second start made a new key")
	}
	// A lost or stale .pub file is rewritten from the private key.
	os.WriteFile(filepath.Join(dir, PublicKeyFile), ssh.MarshalAuthorizedKey(newSigner(t).PublicKey()), 0o644)
	if _, err := LoadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	pub2, _ := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if !bytes.Equal(pub, pub2) {
		t.Fatalf("stale public key file not rewritten: %q", pub2)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("data dir holds %d files, want 2: %v", len(entries), entries)
	}
}

// TestLoadOrCreateKeyRace: concurrent first starts agree on one key.
func TestLoadOrCreateKeyRace(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := LoadOrCreateKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = s.PublicKey().Marshal()
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent starts created different keys")
		}
	}
}

func TestLoadOrCreateKeyRefusesBadFiles(t *testing.T) {
	t.Run("readable by others", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateKey(dir); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, KeyFile), 0o644)
		_, err := LoadOrCreateKey(dir)
		if !errors.Is(err, ErrInvalidKeyFile) || !strings.Contains(err.Error(), "0644") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, KeyFile), []byte("not a key"), 0o600)
		if _, err := LoadOrCreateKey(dir); !errors.Is(err, ErrInvalidKeyFile) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not ed25519", func(t *testing.T) {
		dir := t.TempDir()
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		block, err := ssh.MarshalPrivateKey(k, "")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, KeyFile), pem.EncodeToMemory(block), 0o600)
		_, err = LoadOrCreateKey(dir)
		if !errors.Is(err, ErrInvalidKeyFile) || !strings.Contains(err.Error(), "ecdsa") {
			t.Fatalf("err = %v", err)
		}
	})
}

package transport

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// File names inside a node's data directory (the trust list's are package
// trust's: trust.AuthorizedKeysFile, trust.CacheFile).
const (
	// KeyFile holds the node's ed25519 private key in OpenSSH format, mode 0600.
	KeyFile = "node_key"
	// PublicKeyFile holds the node's public key as an authorized_keys line
	// without a comment. trust.TrustLine gives the line with the node ID.
	PublicKeyFile = "node_key.pub"
)

// LoadOrCreateKey returns the node's key from <dataDir>/node_key, creating
// the directory and an ed25519 key on first start. It also (re)writes
// <dataDir>/node_key.pub when that file is missing or holds another key. An
// existing key file must be an unencrypted ed25519 OpenSSH private key that
// neither group nor others can read (as OpenSSH requires).
//
// Creation is atomic: the key is written to a temporary file and linked into
// place, so two processes racing on one data directory end up with the same
// key and a crash never leaves a truncated key file.
func LoadOrCreateKey(dataDir string) (ssh.Signer, error) {
	path := filepath.Join(dataDir, KeyFile)
	signer, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		signer, err = createKey(dataDir, path)
	}
	if err != nil {
		return nil, err
	}
	if err := ensurePublicKeyFile(dataDir, signer.PublicKey()); err != nil {
		return nil, err
	}
	return signer, nil
}

func loadKey(path string) (ssh.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600", ErrInvalidKeyFile, path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKeyFile, path, err)
	}
	if t := signer.PublicKey().Type(); t != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("%w: %s holds a %s key, want %s", ErrInvalidKeyFile, path, t, ssh.KeyAlgoED25519)
	}
	return signer, nil
}

func createKey(dataDir, path string) (ssh.Signer, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	tmp, err := writeTemp(dataDir, "."+KeyFile+"-*", pem.EncodeToMemory(block), 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	// os.Link fails if the key appeared meanwhile: then that key wins.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path)
		}
		return nil, err
	}
	if err := syncDir(dataDir); err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

func ensurePublicKeyFile(dataDir string, pub ssh.PublicKey) error {
	path := filepath.Join(dataDir, PublicKeyFile)
	if data, err := os.ReadFile(path); err == nil {
		if old, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil && bytes.Equal(old.Marshal(), pub.Marshal()) {
			return nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := writeTemp(dataDir, "."+PublicKeyFile+"-*", ssh.MarshalAuthorizedKey(pub), 0o644)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dataDir)
}

// writeTemp writes data to a new, synced temporary file in dir and returns
// its path.
func writeTemp(dir, pattern string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

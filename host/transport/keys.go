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
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// File names inside a node's data directory.
const (
	// KeyFile holds the node's ed25519 private key in OpenSSH format, mode 0600.
	KeyFile = "node_key"
	// PublicKeyFile holds the node's public key as an authorized_keys line
	// without a comment. TrustLine gives the line with the node ID.
	PublicKeyFile = "node_key.pub"
	// AuthorizedKeysFile is the operator-managed trust file (see
	// Trust.LoadAuthorizedKeys).
	AuthorizedKeysFile = "authorized_keys"
)

// maxNodeIDLen bounds a node ID; it is also an SSH user name.
const maxNodeIDLen = 128

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

// TrustLine returns the authorized_keys line that binds pub to nodeID:
// "ssh-ed25519 AAAA… <node-id>". Appending it to another node's
// authorized_keys file lets this node connect to it and be dialled by it.
func TrustLine(pub ssh.PublicKey, nodeID string) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + nodeID
}

// ParseTrustLine parses one authorized_keys line "<type> <base64> <node-id>".
// The comment field is the node ID and is required; authorized_keys options
// (from=, restrict, …) are refused because the transport does not enforce
// them.
func ParseTrustLine(line string) (Entry, error) {
	key, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrInvalidTrustLine, err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return Entry{}, fmt.Errorf("%w: more than one key on the line", ErrInvalidTrustLine)
	}
	if len(options) != 0 {
		return Entry{}, fmt.Errorf("%w: options (%s) are not supported", ErrInvalidTrustLine, strings.Join(options, ","))
	}
	if comment == "" {
		return Entry{}, fmt.Errorf("%w: no node ID (the comment field names the node)", ErrInvalidTrustLine)
	}
	if err := ValidateNodeID(comment); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrInvalidTrustLine, err)
	}
	return Entry{NodeID: comment, Key: key}, nil
}

// ValidateNodeID reports whether id can name a node: 1 to 128 bytes of
// UTF-8 without white space or control characters.
func ValidateNodeID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidNodeID)
	}
	if len(id) > maxNodeIDLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidNodeID, maxNodeIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidNodeID, id)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: %q contains white space or a control character", ErrInvalidNodeID, id)
		}
	}
	return nil
}

package trust

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// AuthorizedKeysFile is the operator-managed trust file in a node's data
// directory (see Trust.LoadAuthorizedKeys).
const AuthorizedKeysFile = "authorized_keys"

// maxNodeIDLen bounds a node ID; it is also an SSH user name.
const maxNodeIDLen = 128

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
	if err := CheckKeyType(key); err != nil {
		return Entry{}, err
	}
	if comment == "" {
		return Entry{}, fmt.Errorf("%w: no node ID (the comment field names the node)", ErrInvalidTrustLine)
	}
	if err := ValidateNodeID(comment); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrInvalidTrustLine, err)
	}
	return Entry{NodeID: comment, Key: key}, nil
}

// CheckKeyType refuses a key that is not ssh-ed25519: every node key is
// one (transport.LoadOrCreateKey), so another type (an RSA key of any size,
// ECDSA) is not a node's, and trusting it only widens who can log in.
func CheckKeyType(key ssh.PublicKey) error {
	if t := key.Type(); t != ssh.KeyAlgoED25519 {
		return fmt.Errorf("%w: a %s key: node keys are ssh-ed25519", ErrInvalidTrustLine, t)
	}
	return nil
}

// ValidateNodeID reports whether id can name a node: 1 to 128 bytes of
// UTF-8 without white space or control characters, and not "." or "..". A
// node ID is the comment of a trust line, the SSH user name a node logs in
// with, Raft's server ID, a segment of API paths (/v1/cluster/members/{id})
// and the default data directory's name: "." and ".." would name the path's
// or the directory's parent instead.
func ValidateNodeID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidNodeID)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: %q names a directory, not a node (in a URL path or a file name)", ErrInvalidNodeID, id)
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

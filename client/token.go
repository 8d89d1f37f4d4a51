package client

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinTokenLength is the shortest token ReadTokenFile accepts: 16 bytes, e.g.
// the 32 hex digits of 'openssl rand -hex 16' (examples/docker/build.sh
// generates 32 random bytes).
const MinTokenLength = 16

// ErrBadToken is returned, wrapped with the file's name, for a token file
// that is empty, too short or holds more than one token.
var ErrBadToken = errors.New("raftkv: bad token")

// ReadTokenFile reads a bearer token from a file (--token-file): the whole
// file, surrounding white space (a final newline) removed. A token kept in
// a file is not in the process's command line, where ps and
// /debug/pprof/cmdline show it. The file must hold one token of at least
// MinTokenLength bytes, with no white space or control characters inside.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("token file %s is empty: %w", path, ErrBadToken)
	case len(tok) < MinTokenLength:
		return "", fmt.Errorf("token file %s holds a %d-byte token, shorter than %d bytes (make one with 'openssl rand -hex 32'): %w",
			path, len(tok), MinTokenLength, ErrBadToken)
	case strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return "", fmt.Errorf("token file %s: the token contains white space or a control character: %w", path, ErrBadToken)
	}
	return tok, nil
}

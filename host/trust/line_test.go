package trust

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestTrustLineRoundTrip(t *testing.T) {
	s := newSigner(t)
	line := TrustLine(s.PublicKey(), "node-1")
	if !strings.HasPrefix(line, "ssh-ed25519 AAAA") || !strings.HasSuffix(line, " node-1") || strings.Contains(line, "\n") {
		t.Fatalf("TrustLine = %q", line)
	}
	e, err := ParseTrustLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if e.NodeID != "node-1" || !bytes.Equal(e.Key.Marshal(), s.PublicKey().Marshal()) {
		t.Fatalf("parsed %v", e)
	}
	if e.String() != line {
		t.Fatalf("Entry.String() = %q", e.String())
	}
}

func TestParseTrustLineErrors(t *testing.T) {
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newSigner(t).PublicKey())))
	for name, line := range map[string]string{
		"no node id":    key,
		"id with space": key + " node one",
		"options":       `from="10.0.0.1" ` + key + " n1",
		"bad base64":    "ssh-ed25519 AAAA!!!! n1",
		"empty":         "",
		"id .":          key + " .",
		"id ..":         key + " ..",
	} {
		if _, err := ParseTrustLine(line); !errors.Is(err, ErrInvalidTrustLine) {
			t.Errorf("%s: ParseTrustLine(%q) = %v, want ErrInvalidTrustLine", name, line, err)
		}
	}
}

// Only ssh-ed25519 keys, the type of every node key: an RSA key of 1024
// bits and an ECDSA key were trusted, and logged in (attack round 5).
func TestParseTrustLineKeyTypes(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []any{&rsaKey.PublicKey, &ecKey.PublicKey} {
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		line := TrustLine(k, "n1")
		if _, err := ParseTrustLine(line); !errors.Is(err, ErrInvalidTrustLine) || !strings.Contains(err.Error(), "node keys are ssh-ed25519") {
			t.Errorf("%s: %v, want refused", k.Type(), err)
		}
	}
}

func TestValidateNodeID(t *testing.T) {
	for _, ok := range []string{"n1", "node-1.example", "ñodo", "...", ".n", "n."} {
		if err := ValidateNodeID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a\tb", "a\x00", strings.Repeat("x", 129), "\xff", ".", ".."} {
		if err := ValidateNodeID(bad); !errors.Is(err, ErrInvalidNodeID) {
			t.Errorf("%q: %v, want ErrInvalidNodeID", bad, err)
		}
	}
}

package client_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/raftkv/raftkv/client"
)

// TestMemberIDReachesTheServer: RemoveMember sends any ID as itself, "."
// and ".." included (the server's router cleaned them away: 405 on
// /v1/cluster), so that the answer is about that ID.
func TestMemberIDReachesTheServer(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	for _, id := range []string{".", "..", "a/b", "../n1", "50%", "a?b#c", "%2E%2E"} {
		err := c.RemoveMember(ctx, id)
		var ae *client.Error
		if !errors.As(err, &ae) || !errors.Is(err, client.ErrNotFound) || !strings.Contains(ae.Message, strconv.Quote(id)) {
			t.Errorf("RemoveMember(%q): %v; want not_found naming %q", id, err, id)
		}
	}
}

// TestTrustRefusesDotIDs: "." and ".." name no node, in a trust line's
// comment or as the ID given beside the line.
func TestTrustRefusesDotIDs(t *testing.T) {
	c := newClient(t, client.Config{Endpoints: endpoints})
	ctx := ctxT(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	for _, id := range []string{".", ".."} {
		for _, call := range []struct{ line, id string }{{line + " " + id, ""}, {line, id}} {
			_, err := c.Trust(ctx, call.line, call.id)
			if !errors.Is(err, client.ErrBadRequest) || !strings.Contains(err.Error(), "invalid node ID") {
				t.Errorf("Trust(%q, %q): %v; want bad_request, invalid node ID", call.line, call.id, err)
			}
		}
	}
}

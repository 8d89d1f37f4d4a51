package peerrpc

import (
	"errors"
	"testing"
)

// TestAuthorizeSelfJoin: a join of one's own ID is open to a key that is
// not a member yet; a non-voter's (a promotion) needs the cluster's token
// where there is one. It was open to every role, so a read replica's key,
// which holds no token, could make itself a voter (attack round 5).
func TestAuthorizeSelfJoin(t *testing.T) {
	const tok = "the-cluster-token-0123456789"
	for _, c := range []struct {
		role         Role
		callerToken  string
		clusterToken string
		ok           bool
	}{
		{Trusted, "", tok, true},
		{NonVoter, "", tok, false},
		{NonVoter, "wrong-token-0123456789", tok, false},
		{NonVoter, tok, tok, true},
		{NonVoter, "", "", true}, // no token: the HTTP API's admin requests are open too
		{Voter, "", tok, true},
	} {
		err := Authorize(Join, Caller{ID: "n5", Role: c.role, Token: c.callerToken}, "n5", c.clusterToken)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("%v joining itself (token %q, cluster's %q): %v, want allowed %v", c.role, c.callerToken, c.clusterToken, err, c.ok)
		}
	}
	// Another ID, or its own removal and addresses, are as before.
	if err := Authorize(Join, Caller{ID: "n5", Role: Trusted}, "n6", tok); !errors.Is(err, ErrForbidden) {
		t.Errorf("a trusted key joining another ID: %v", err)
	}
	for _, m := range []Method{Remove, Addresses} {
		if err := Authorize(m, Caller{ID: "n5", Role: NonVoter}, "n5", tok); err != nil {
			t.Errorf("a non-voter's %s of itself: %v", m.Name, err)
		}
		if err := Authorize(m, Caller{ID: "n5", Role: Trusted}, "n5", tok); !errors.Is(err, ErrForbidden) {
			t.Errorf("a non-member's %s of itself: %v", m.Name, err)
		}
	}
}

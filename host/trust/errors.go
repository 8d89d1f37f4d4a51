package trust

import "errors"

// Sentinel errors. The errors this package returns for a bad node ID, trust
// line or binding wrap one of these (test with errors.Is).
var (
	// ErrInvalidNodeID is returned for an empty node ID, "." or "..", or one
	// that contains white space or control characters (node IDs are the
	// comment field of an authorized_keys line and the SSH user name).
	ErrInvalidNodeID = errors.New("trust: invalid node ID")

	// ErrInvalidTrustLine is returned for an authorized_keys line that is
	// not "<key-type> <base64-key> <node-id>".
	ErrInvalidTrustLine = errors.New("trust: invalid trust line")

	// ErrKeyConflict is returned when one public key would be bound to two
	// node IDs.
	ErrKeyConflict = errors.New("trust: key bound to another node")
)

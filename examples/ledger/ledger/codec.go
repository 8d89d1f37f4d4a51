package ledger

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
	"github.com/raftkv/raftkv/plugins/sdk/mp"
)

// Key prefixes of the state layout (see the package documentation).
const (
	prefixAccount = "a/"
	prefixHistory = "h/"
	prefixTx      = "t/"
	prefixRef     = "r/"
	keyTotals     = "m/totals"
)

func accountKey(id []byte) []byte { return append([]byte(prefixAccount), id...) }

func txKey(index uint64) []byte { return binary.BigEndian.AppendUint64([]byte(prefixTx), index) }

func refKey(ref []byte) []byte { return append([]byte(prefixRef), ref...) }

// historyPrefix is the prefix of an account's history keys; historyKey
// appends the transaction's index.
func historyPrefix(id []byte) []byte {
	return append(append([]byte(prefixHistory), id...), '/')
}

func historyKey(id []byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(historyPrefix(id), index)
}

// Directions recorded as the value of a history key.
const (
	dirDeposit = 'd'
	dirIn      = 'i'
	dirOut     = 'o'
)

func badRequest(format string, args ...any) error {
	return sdk.Errorf(abi.CodeBadRequest, format, args...)
}

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// account is the record stored under a/<name>.
type account struct {
	Balance     uint64
	Opened      int64  // leader time of the open command, Unix ns
	OpenedIndex uint64 // its log index
	// Fields maintained by v2 (and rebuilt by its migration).
	TxCount uint64 // deposits and transfers involving the account
	LastTx  uint64 // index of the latest of them, 0 if none
}

// encode returns the stored form; v2 adds the fields it maintains.
func (a *account) encode(v2 bool) []byte {
	n := 3
	if v2 {
		n = 5
	}
	b := mp.AppendMapHeader(make([]byte, 0, 64), n)
	b = mp.AppendUint(mp.AppendString(b, "balance"), a.Balance)
	b = mp.AppendInt(mp.AppendString(b, "opened"), a.Opened)
	b = mp.AppendUint(mp.AppendString(b, "opened_index"), a.OpenedIndex)
	if v2 {
		b = mp.AppendUint(mp.AppendString(b, "tx_count"), a.TxCount)
		b = mp.AppendUint(mp.AppendString(b, "last_tx"), a.LastTx)
	}
	return b
}

// decodeAccount reads a stored account; fields it does not know are ignored,
// and the v2 fields are zero in a record v1 wrote.
func decodeAccount(b []byte) (account, error) {
	var a account
	err := readMap(b, func(name []byte, r *mp.Reader) error {
		var err error
		switch string(name) {
		case "balance":
			a.Balance, err = r.ReadUint64()
		case "opened":
			a.Opened, err = r.ReadInt64()
		case "opened_index":
			a.OpenedIndex, err = r.ReadUint64()
		case "tx_count":
			a.TxCount, err = r.ReadUint64()
		case "last_tx":
			a.LastTx, err = r.ReadUint64()
		default:
			err = r.Skip()
		}
		return err
	})
	if err != nil {
		return a, sdk.Errorf(abi.CodeInternal, "corrupt account record: %v", err)
	}
	return a, nil
}

// totals is the record stored under m/totals.
type totals struct {
	Supply   uint64 // the sum of every balance
	Accounts uint64
}

func (t *totals) encode() []byte {
	b := mp.AppendMapHeader(make([]byte, 0, 32), 2)
	b = mp.AppendUint(mp.AppendString(b, "supply"), t.Supply)
	return mp.AppendUint(mp.AppendString(b, "accounts"), t.Accounts)
}

func loadTotals(st sdk.State) (totals, error) {
	var t totals
	v, _, ok := st.Get([]byte(keyTotals))
	if !ok {
		return t, nil
	}
	err := readMap(v, func(name []byte, r *mp.Reader) error {
		var err error
		switch string(name) {
		case "supply":
			t.Supply, err = r.ReadUint64()
		case "accounts":
			t.Accounts, err = r.ReadUint64()
		default:
			err = r.Skip()
		}
		return err
	})
	if err != nil {
		return t, sdk.Errorf(abi.CodeInternal, "corrupt totals record: %v", err)
	}
	return t, nil
}

// Transaction kinds.
const (
	kindDeposit  = "deposit"
	kindTransfer = "transfer"
)

// transaction is the record stored under t/<index>.
type transaction struct {
	Index  uint64
	Time   int64 // leader time, Unix ns
	Kind   string
	From   []byte // transfers only
	To     []byte
	Amount uint64
	Ref    []byte // optional
}

// appendTx appends the transaction as a MsgPack map: the stored form, or the
// form queries answer (with "tx" and an RFC 3339 time).
func appendTx(b []byte, t *transaction, answer bool) []byte {
	n := 5
	if len(t.From) > 0 {
		n++
	}
	if len(t.Ref) > 0 {
		n++
	}
	b = mp.AppendMapHeader(b, n)
	if answer {
		b = mp.AppendUint(mp.AppendString(b, "tx"), t.Index)
		b = mp.AppendString(mp.AppendString(b, "time"), formatTime(t.Time))
	} else {
		b = mp.AppendUint(mp.AppendString(b, "index"), t.Index)
		b = mp.AppendInt(mp.AppendString(b, "time"), t.Time)
	}
	b = mp.AppendString(mp.AppendString(b, "kind"), t.Kind)
	if len(t.From) > 0 {
		b = mp.AppendStringBytes(mp.AppendString(b, "from"), t.From)
	}
	b = mp.AppendStringBytes(mp.AppendString(b, "to"), t.To)
	b = mp.AppendUint(mp.AppendString(b, "amount"), t.Amount)
	if len(t.Ref) > 0 {
		b = mp.AppendStringBytes(mp.AppendString(b, "ref"), t.Ref)
	}
	return b
}

// decodeTx reads a stored transaction, copying its byte fields.
func decodeTx(b []byte) (transaction, error) {
	var t transaction
	err := readMap(b, func(name []byte, r *mp.Reader) error {
		var err error
		var s []byte
		switch string(name) {
		case "index":
			t.Index, err = r.ReadUint64()
		case "time":
			t.Time, err = r.ReadInt64()
		case "kind":
			s, err = r.ReadBytes()
			t.Kind = string(s)
		case "from":
			s, err = r.ReadBytes()
			t.From = append([]byte(nil), s...)
		case "to":
			s, err = r.ReadBytes()
			t.To = append([]byte(nil), s...)
		case "amount":
			t.Amount, err = r.ReadUint64()
		case "ref":
			s, err = r.ReadBytes()
			t.Ref = append([]byte(nil), s...)
		default:
			err = r.Skip()
		}
		return err
	})
	if err != nil {
		return t, sdk.Errorf(abi.CodeInternal, "corrupt transaction record: %v", err)
	}
	return t, nil
}

// readMap calls fn for each field of the MsgPack map b, with r positioned at
// the field's value; fn must consume exactly that value. Field names must be
// str or bin.
func readMap(b []byte, fn func(name []byte, r *mp.Reader) error) error {
	r := mp.NewReader(b)
	n, err := r.ReadMapHeader()
	if err != nil {
		return err
	}
	for range n {
		if t := r.Peek(); t != mp.TypeStr && t != mp.TypeBin {
			return mp.ErrType
		}
		name, err := r.ReadBytes()
		if err != nil {
			return err
		}
		if err := fn(name, r); err != nil {
			return err
		}
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d bytes after the map", r.Len())
	}
	return nil
}

// request holds the raw MsgPack encodings of the known fields of a command
// or query (nil when absent), aliasing the input.
type request struct {
	kind                          string // "command" or "query", for messages
	op, account, from, to, amount []byte
	ref, start, limit, index      []byte
	after                         []byte
}

// parseRequest checks that data is one MsgPack map with string field names
// and collects its known fields.
func parseRequest(data []byte, kind string) (*request, error) {
	q := &request{kind: kind}
	if !mp.Valid(data) {
		return nil, badRequest("malformed %s: invalid msgpack", kind)
	}
	if mp.NewReader(data).Peek() != mp.TypeMap {
		return nil, badRequest("malformed %s: expected a map", kind)
	}
	err := readMap(data, func(name []byte, r *mp.Reader) error {
		raw, err := r.ReadRaw()
		switch string(name) {
		case "op":
			q.op = raw
		case "account":
			q.account = raw
		case "from":
			q.from = raw
		case "to":
			q.to = raw
		case "amount":
			q.amount = raw
		case "ref":
			q.ref = raw
		case "start":
			q.start = raw
		case "limit":
			q.limit = raw
		case "index":
			q.index = raw
		case "after":
			q.after = raw
		}
		return err
	})
	if err != nil {
		return nil, badRequest("malformed %s: field names must be strings", kind)
	}
	return q, nil
}

// rawBytes decodes a raw str or bin.
func rawBytes(raw []byte) ([]byte, bool) {
	r := mp.NewReader(raw)
	if t := r.Peek(); t != mp.TypeStr && t != mp.TypeBin {
		return nil, false
	}
	b, err := r.ReadBytes()
	return b, err == nil
}

// rawUint decodes a raw non-negative integer.
func rawUint(raw []byte) (uint64, bool) {
	v, err := mp.NewReader(raw).ReadUint64()
	return v, err == nil
}

// opName returns the op, lower-cased.
func (q *request) opName() (string, error) {
	if q.op == nil {
		return "", badRequest("missing op")
	}
	b, ok := rawBytes(q.op)
	if !ok {
		return "", badRequest("op must be a string")
	}
	return strings.ToLower(string(b)), nil
}

// MaxAccountLen is the longest account name, in bytes.
const MaxAccountLen = 64

// ValidAccount reports whether name is a valid account name: 1 to
// MaxAccountLen ASCII letters, digits, '.', '_' or '-'.
func ValidAccount(name []byte) bool {
	if len(name) == 0 || len(name) > MaxAccountLen {
		return false
	}
	for _, c := range name {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// accountField reads the account name in the raw field called name.
func accountField(name string, raw []byte) ([]byte, error) {
	if raw == nil {
		return nil, badRequest("missing %s", name)
	}
	b, ok := rawBytes(raw)
	if !ok {
		return nil, badRequest("%s must be a string", name)
	}
	if !ValidAccount(b) {
		return nil, badRequest("invalid account name %q in %s: use 1 to %d letters, digits, '.', '_' or '-'", cut(b), name, MaxAccountLen)
	}
	return b, nil
}

// cut shortens b for an error message.
func cut(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

func (q *request) amountField() (uint64, error) {
	if q.amount == nil {
		return 0, badRequest("missing amount")
	}
	v, ok := rawUint(q.amount)
	if !ok || v == 0 {
		return 0, badRequest("amount must be an integer from 1 to 18446744073709551615")
	}
	return v, nil
}

// MaxRefLen is the longest client reference, in bytes.
const MaxRefLen = 128

// refField reads the optional ref (nil when absent).
func (q *request) refField() ([]byte, error) {
	if q.ref == nil {
		return nil, nil
	}
	b, ok := rawBytes(q.ref)
	if !ok || len(b) == 0 || len(b) > MaxRefLen {
		return nil, badRequest("ref must be a string of 1 to %d bytes", MaxRefLen)
	}
	return b, nil
}

// Page sizes of the listing queries.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func (q *request) limitField() (int, error) {
	if q.limit == nil {
		return DefaultLimit, nil
	}
	v, ok := rawUint(q.limit)
	if !ok || v < 1 || v > MaxLimit {
		return 0, badRequest("limit must be an integer between 1 and %d", MaxLimit)
	}
	return int(v), nil
}

// uintField reads an optional non-negative integer field (0 when absent).
func uintField(name string, raw []byte) (uint64, error) {
	if raw == nil {
		return 0, nil
	}
	v, ok := rawUint(raw)
	if !ok {
		return 0, badRequest("%s must be a non-negative integer", name)
	}
	return v, nil
}

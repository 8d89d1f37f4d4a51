package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
	"github.com/raftkv/raftkv/plugins/sdk/mp"
)

// The ledger's own result codes (the ABI leaves 64-255 to plugins).
const (
	// CodeInsufficientFunds: a transfer is larger than the payer's balance.
	CodeInsufficientFunds abi.Code = 64
	// CodeSupplyOverflow: a deposit would take the supply past 2^64-1.
	CodeSupplyOverflow abi.Code = 65
)

// Name is the plugin name both versions report.
const Name = "ledger"

// V1 is version 1.0.0 of the ledger.
type V1 struct{}

// V2 is version 2.0.0: V1 plus per-account transaction counts and history,
// with a migration that builds them from v1's transactions.
type V2 struct{}

var (
	_ sdk.Plugin    = V1{}
	_ sdk.Describer = V1{}
	_ sdk.Plugin    = V2{}
	_ sdk.Describer = V2{}
	_ sdk.Migrator  = V2{}
)

// Info implements sdk.Describer.
func (V1) Info() abi.Info {
	return abi.Info{Name: Name, Version: "1.0.0", Description: "bank ledger: accounts, deposits (the only way to mint) and transfers that never overdraw"}
}

// Apply implements sdk.Plugin.
func (V1) Apply(st sdk.State, e sdk.Entry) ([]byte, error) { return ledger{}.apply(st, e) }

// Query implements sdk.Plugin.
func (V1) Query(st sdk.State, q []byte) ([]byte, error) { return ledger{}.query(st, q) }

// Info implements sdk.Describer.
func (V2) Info() abi.Info {
	return abi.Info{Name: Name, Version: "2.0.0", Description: "bank ledger with per-account history: accounts, deposits (the only way to mint) and transfers that never overdraw"}
}

// Apply implements sdk.Plugin.
func (V2) Apply(st sdk.State, e sdk.Entry) ([]byte, error) { return ledger{v2: true}.apply(st, e) }

// Query implements sdk.Plugin.
func (V2) Query(st sdk.State, q []byte) ([]byte, error) { return ledger{v2: true}.query(st, q) }

// ledger is the logic shared by both versions.
type ledger struct{ v2 bool }

var commands = map[string]bool{"open": true, "deposit": true, "transfer": true}

func (l ledger) isQuery(op string) bool {
	switch op {
	case "balance", "supply", "accounts", "audit", "tx":
		return true
	case "history":
		return l.v2
	}
	return false
}

func (l ledger) apply(st sdk.State, e sdk.Entry) ([]byte, error) {
	q, err := parseRequest(e.Data, "command")
	if err != nil {
		return nil, err
	}
	op, err := q.opName()
	if err != nil {
		return nil, err
	}
	switch op {
	case "open":
		return l.open(st, e, q)
	case "deposit":
		return l.deposit(st, e, q)
	case "transfer":
		return l.transfer(st, e, q)
	}
	if l.isQuery(op) {
		return nil, badRequest("op %q is a query: send it as a query, not a command", op)
	}
	return nil, badRequest("unknown op %q", cut([]byte(op)))
}

func (l ledger) query(st sdk.State, data []byte) ([]byte, error) {
	q, err := parseRequest(data, "query")
	if err != nil {
		return nil, err
	}
	op, err := q.opName()
	if err != nil {
		return nil, err
	}
	switch {
	case op == "balance":
		return l.balance(st, q)
	case op == "supply":
		return supply(st)
	case op == "accounts":
		return accounts(st, q)
	case op == "audit":
		return audit(st)
	case op == "tx":
		return txQuery(st, q)
	case op == "history" && l.v2:
		return history(st, q)
	case commands[op]:
		return nil, badRequest("op %q is a command: send it as a command, not a query", op)
	}
	return nil, badRequest("unknown op %q", cut([]byte(op)))
}

// loadAccount reads the account id, failing with CodeNotFound if it does not
// exist.
func loadAccount(st sdk.State, id []byte) (account, error) {
	v, _, ok := st.Get(accountKey(id))
	if !ok {
		return account{}, sdk.Errorf(abi.CodeNotFound, "account %s not found", id)
	}
	return decodeAccount(v)
}

// checkRef fails with CodeConflict if ref was used by an earlier transaction.
func checkRef(st sdk.State, ref []byte) error {
	if ref == nil {
		return nil
	}
	if v, _, ok := st.Get(refKey(ref)); ok && len(v) == 8 {
		return sdk.Errorf(abi.CodeConflict, "duplicate ref %q: already applied as tx %d", ref, binary.BigEndian.Uint64(v))
	}
	return nil
}

// record stores a deposit's or transfer's transaction record, its ref and,
// in v2, its history keys.
func (l ledger) record(st sdk.State, t *transaction) error {
	if err := st.Set(txKey(t.Index), appendTx(nil, t, false)); err != nil {
		return err
	}
	if t.Ref != nil {
		if err := st.Set(refKey(t.Ref), binary.BigEndian.AppendUint64(nil, t.Index)); err != nil {
			return err
		}
	}
	if !l.v2 {
		return nil
	}
	if t.From != nil {
		if err := st.Set(historyKey(t.From, t.Index), []byte{dirOut}); err != nil {
			return err
		}
		return st.Set(historyKey(t.To, t.Index), []byte{dirIn})
	}
	return st.Set(historyKey(t.To, t.Index), []byte{dirDeposit})
}

// touch updates the v2 fields of an account involved in transaction index.
func (l ledger) touch(a *account, index uint64) {
	if l.v2 {
		a.TxCount++
		a.LastTx = index
	}
}

func (l ledger) open(st sdk.State, e sdk.Entry, q *request) ([]byte, error) {
	id, err := accountField("account", q.account)
	if err != nil {
		return nil, err
	}
	key := accountKey(id)
	if _, _, ok := st.Get(key); ok {
		return nil, sdk.Errorf(abi.CodeConflict, "account %s already exists", id)
	}
	t, err := loadTotals(st)
	if err != nil {
		return nil, err
	}
	a := account{Opened: e.Time, OpenedIndex: e.Index}
	if err := st.Set(key, a.encode(l.v2)); err != nil {
		return nil, err
	}
	t.Accounts++
	if err := st.Set([]byte(keyTotals), t.encode()); err != nil {
		return nil, err
	}
	b := mp.AppendMapHeader(nil, 3)
	b = mp.AppendStringBytes(mp.AppendString(b, "account"), id)
	b = mp.AppendUint(mp.AppendString(b, "balance"), 0)
	return mp.AppendString(mp.AppendString(b, "opened"), formatTime(e.Time)), nil
}

// deposit mints amount into an account: the only operation that changes the
// supply.
func (l ledger) deposit(st sdk.State, e sdk.Entry, q *request) ([]byte, error) {
	id, err := accountField("account", q.account)
	if err != nil {
		return nil, err
	}
	amount, err := q.amountField()
	if err != nil {
		return nil, err
	}
	ref, err := q.refField()
	if err != nil {
		return nil, err
	}
	if err := checkRef(st, ref); err != nil {
		return nil, err
	}
	a, err := loadAccount(st, id)
	if err != nil {
		return nil, err
	}
	t, err := loadTotals(st)
	if err != nil {
		return nil, err
	}
	if t.Supply > math.MaxUint64-amount {
		return nil, sdk.Errorf(CodeSupplyOverflow, "a deposit of %d would take the supply %d past %d", amount, t.Supply, uint64(math.MaxUint64))
	}
	if a.Balance > t.Supply {
		return nil, sdk.Errorf(abi.CodeInternal, "invariant broken: account %s holds %d, more than the supply %d", id, a.Balance, t.Supply)
	}
	a.Balance += amount // cannot overflow: a.Balance <= t.Supply
	t.Supply += amount
	l.touch(&a, e.Index)
	if err := st.Set(accountKey(id), a.encode(l.v2)); err != nil {
		return nil, err
	}
	if err := st.Set([]byte(keyTotals), t.encode()); err != nil {
		return nil, err
	}
	tx := transaction{Index: e.Index, Time: e.Time, Kind: kindDeposit, To: id, Amount: amount, Ref: ref}
	if err := l.record(st, &tx); err != nil {
		return nil, err
	}
	b := mp.AppendMapHeader(nil, 4)
	b = mp.AppendUint(mp.AppendString(b, "tx"), e.Index)
	b = mp.AppendStringBytes(mp.AppendString(b, "account"), id)
	b = mp.AppendUint(mp.AppendString(b, "balance"), a.Balance)
	return mp.AppendUint(mp.AppendString(b, "supply"), t.Supply), nil
}

// transfer moves amount between two accounts; it never overdraws and leaves
// the supply unchanged.
func (l ledger) transfer(st sdk.State, e sdk.Entry, q *request) ([]byte, error) {
	from, err := accountField("from", q.from)
	if err != nil {
		return nil, err
	}
	to, err := accountField("to", q.to)
	if err != nil {
		return nil, err
	}
	amount, err := q.amountField()
	if err != nil {
		return nil, err
	}
	ref, err := q.refField()
	if err != nil {
		return nil, err
	}
	if bytes.Equal(from, to) {
		return nil, badRequest("cannot transfer from account %s to itself", from)
	}
	if err := checkRef(st, ref); err != nil {
		return nil, err
	}
	fa, err := loadAccount(st, from)
	if err != nil {
		return nil, err
	}
	ta, err := loadAccount(st, to)
	if err != nil {
		return nil, err
	}
	if fa.Balance < amount {
		return nil, sdk.Errorf(CodeInsufficientFunds, "insufficient funds: account %s holds %d, the transfer needs %d", from, fa.Balance, amount)
	}
	sum, carry := bits.Add64(ta.Balance, amount, 0)
	if carry != 0 {
		return nil, sdk.Errorf(abi.CodeInternal, "invariant broken: account %s would exceed %d", to, uint64(math.MaxUint64))
	}
	fa.Balance -= amount
	ta.Balance = sum
	l.touch(&fa, e.Index)
	l.touch(&ta, e.Index)
	if err := st.Set(accountKey(from), fa.encode(l.v2)); err != nil {
		return nil, err
	}
	if err := st.Set(accountKey(to), ta.encode(l.v2)); err != nil {
		return nil, err
	}
	tx := transaction{Index: e.Index, Time: e.Time, Kind: kindTransfer, From: from, To: to, Amount: amount, Ref: ref}
	if err := l.record(st, &tx); err != nil {
		return nil, err
	}
	b := mp.AppendMapHeader(nil, 6)
	b = mp.AppendUint(mp.AppendString(b, "tx"), e.Index)
	b = mp.AppendStringBytes(mp.AppendString(b, "from"), from)
	b = mp.AppendStringBytes(mp.AppendString(b, "to"), to)
	b = mp.AppendUint(mp.AppendString(b, "amount"), amount)
	b = mp.AppendUint(mp.AppendString(b, "from_balance"), fa.Balance)
	return mp.AppendUint(mp.AppendString(b, "to_balance"), ta.Balance), nil
}

func (l ledger) balance(st sdk.State, q *request) ([]byte, error) {
	id, err := accountField("account", q.account)
	if err != nil {
		return nil, err
	}
	a, err := loadAccount(st, id)
	if err != nil {
		return nil, err
	}
	n := 3
	if l.v2 {
		n = 5
	}
	b := mp.AppendMapHeader(nil, n)
	b = mp.AppendStringBytes(mp.AppendString(b, "account"), id)
	b = mp.AppendUint(mp.AppendString(b, "balance"), a.Balance)
	b = mp.AppendString(mp.AppendString(b, "opened"), formatTime(a.Opened))
	if l.v2 {
		b = mp.AppendUint(mp.AppendString(b, "tx_count"), a.TxCount)
		b = mp.AppendUint(mp.AppendString(b, "last_tx"), a.LastTx)
	}
	return b, nil
}

func supply(st sdk.State) ([]byte, error) {
	t, err := loadTotals(st)
	if err != nil {
		return nil, err
	}
	b := mp.AppendMapHeader(nil, 2)
	b = mp.AppendUint(mp.AppendString(b, "supply"), t.Supply)
	return mp.AppendUint(mp.AppendString(b, "accounts"), t.Accounts), nil
}

func accounts(st sdk.State, q *request) ([]byte, error) {
	var start []byte
	if q.start != nil {
		s, ok := rawBytes(q.start)
		if !ok {
			return nil, badRequest("start must be a string")
		}
		start = s
	}
	limit, err := q.limitField()
	if err != nil {
		return nil, err
	}
	recs, err := st.Scan(accountKey(start), sdk.PrefixEnd([]byte(prefixAccount)), limit+1)
	if err != nil {
		return nil, err
	}
	n := min(len(recs), limit)
	fields := 1
	if len(recs) > limit {
		fields = 2
	}
	b := mp.AppendMapHeader(nil, fields)
	b = mp.AppendArrayHeader(mp.AppendString(b, "accounts"), n)
	for _, r := range recs[:n] {
		a, err := decodeAccount(r.Value)
		if err != nil {
			return nil, err
		}
		b = mp.AppendMapHeader(b, 2)
		b = mp.AppendStringBytes(mp.AppendString(b, "account"), r.Key[len(prefixAccount):])
		b = mp.AppendUint(mp.AppendString(b, "balance"), a.Balance)
	}
	if len(recs) > limit {
		b = mp.AppendStringBytes(mp.AppendString(b, "next"), recs[limit].Key[len(prefixAccount):])
	}
	return b, nil
}

// audit recomputes the sum of every balance and compares it with the supply.
func audit(st sdk.State) ([]byte, error) {
	t, err := loadTotals(st)
	if err != nil {
		return nil, err
	}
	var sum, counted uint64
	overflow := false
	err = scanAll(st, []byte(prefixAccount), func(_, v []byte) error {
		a, err := decodeAccount(v)
		if err != nil {
			return err
		}
		var carry uint64
		sum, carry = bits.Add64(sum, a.Balance, 0)
		overflow = overflow || carry != 0
		counted++
		return nil
	})
	if err != nil {
		return nil, err
	}
	ok := !overflow && sum == t.Supply && counted == t.Accounts
	b := mp.AppendMapHeader(nil, 5)
	b = mp.AppendUint(mp.AppendString(b, "supply"), t.Supply)
	b = mp.AppendUint(mp.AppendString(b, "sum"), sum)
	b = mp.AppendUint(mp.AppendString(b, "accounts"), t.Accounts)
	b = mp.AppendUint(mp.AppendString(b, "counted"), counted)
	return mp.AppendBool(mp.AppendString(b, "ok"), ok), nil
}

func txQuery(st sdk.State, q *request) ([]byte, error) {
	if q.index == nil {
		return nil, badRequest("missing index")
	}
	index, err := uintField("index", q.index)
	if err != nil {
		return nil, err
	}
	v, _, ok := st.Get(txKey(index))
	if !ok {
		return nil, sdk.Errorf(abi.CodeNotFound, "no transaction at index %d", index)
	}
	t, err := decodeTx(v)
	if err != nil {
		return nil, err
	}
	return appendTx(nil, &t, true), nil
}

// history lists an account's transactions through v2's history index.
func history(st sdk.State, q *request) ([]byte, error) {
	id, err := accountField("account", q.account)
	if err != nil {
		return nil, err
	}
	after, err := uintField("after", q.after)
	if err != nil {
		return nil, err
	}
	limit, err := q.limitField()
	if err != nil {
		return nil, err
	}
	if _, err := loadAccount(st, id); err != nil {
		return nil, err
	}
	if after == math.MaxUint64 {
		return mp.AppendArrayHeader(mp.AppendString(mp.AppendStringBytes(mp.AppendString(mp.AppendMapHeader(nil, 2), "account"), id), "transactions"), 0), nil
	}
	prefix := historyPrefix(id)
	recs, err := st.Scan(historyKey(id, after+1), sdk.PrefixEnd(prefix), limit+1)
	if err != nil {
		return nil, err
	}
	// Copy the indexes out: the records are only valid until the next Get.
	indexes := make([]uint64, 0, len(recs))
	for _, r := range recs {
		if len(r.Key) != len(prefix)+8 {
			return nil, sdk.Errorf(abi.CodeInternal, "corrupt history key %q", r.Key)
		}
		indexes = append(indexes, binary.BigEndian.Uint64(r.Key[len(prefix):]))
	}
	n := min(len(indexes), limit)
	fields := 2
	if len(indexes) > limit {
		fields = 3
	}
	b := mp.AppendMapHeader(nil, fields)
	b = mp.AppendStringBytes(mp.AppendString(b, "account"), id)
	b = mp.AppendArrayHeader(mp.AppendString(b, "transactions"), n)
	for _, index := range indexes[:n] {
		v, _, ok := st.Get(txKey(index))
		if !ok {
			return nil, sdk.Errorf(abi.CodeInternal, "history of %s names tx %d, which does not exist", id, index)
		}
		t, err := decodeTx(v)
		if err != nil {
			return nil, err
		}
		b = appendTx(b, &t, true)
	}
	if len(indexes) > limit {
		// Continue after the last transaction returned.
		b = mp.AppendUint(mp.AppendString(b, "next"), indexes[n-1])
	}
	return b, nil
}

// scanChunk is how many records scanAll asks for at a time.
const scanChunk = 1000

// scanAll calls fn for every key that starts with prefix, in order. The
// slices passed to fn are valid only during the call, and fn must not use st.
func scanAll(st sdk.State, prefix []byte, fn func(key, value []byte) error) error {
	end := sdk.PrefixEnd(prefix)
	cursor := bytes.Clone(prefix)
	for {
		recs, err := st.Scan(cursor, end, scanChunk)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r.Key, r.Value); err != nil {
				return err
			}
		}
		if len(recs) < scanChunk {
			return nil
		}
		cursor = append(bytes.Clone(recs[len(recs)-1].Key), 0)
	}
}

// Migrate implements sdk.Migrator. It accepts the state of ledger 1.x (and
// of 2.x, so that redeploying v2 is harmless) and (re)builds what v2
// maintains from the transaction records: each account's tx_count and
// last_tx, and the h/<account>/<index> history index. It is idempotent, so it
// also repairs the index after a downgrade to v1 and a new upgrade. It runs in
// one call, at the deploy's log index; a very large ledger would need a
// migration in steps.
func (V2) Migrate(st sdk.State, m abi.Migration) error {
	if !strings.HasPrefix(m.FromVersion, "1.") && !strings.HasPrefix(m.FromVersion, "2.") {
		return sdk.Errorf(abi.CodeConflict, "ledger 2.0.0 cannot migrate the state of version %q: only ledger 1.x or 2.x", m.FromVersion)
	}
	type entry struct {
		id   []byte
		acct account
		old  []byte // the stored record
	}
	var list []*entry
	byID := map[string]*entry{}
	err := scanAll(st, []byte(prefixAccount), func(k, v []byte) error {
		a, err := decodeAccount(v)
		if err != nil {
			return err
		}
		a.TxCount, a.LastTx = 0, 0
		e := &entry{id: bytes.Clone(k[len(prefixAccount):]), acct: a, old: bytes.Clone(v)}
		list = append(list, e)
		byID[string(e.id)] = e
		return nil
	})
	if err != nil {
		return err
	}
	type hist struct {
		key []byte
		dir byte
	}
	var index []hist
	txs := 0
	err = scanAll(st, []byte(prefixTx), func(_, v []byte) error {
		t, err := decodeTx(v)
		if err != nil {
			return err
		}
		txs++
		parties := []struct {
			id  []byte
			dir byte
		}{{t.To, dirDeposit}}
		if t.Kind == kindTransfer {
			parties = []struct {
				id  []byte
				dir byte
			}{{t.From, dirOut}, {t.To, dirIn}}
		}
		for _, p := range parties {
			e := byID[string(p.id)]
			if e == nil {
				return sdk.Errorf(abi.CodeInternal, "tx %d names account %s, which does not exist", t.Index, p.id)
			}
			e.acct.TxCount++
			e.acct.LastTx = t.Index
			index = append(index, hist{historyKey(p.id, t.Index), p.dir})
		}
		return nil
	})
	if err != nil {
		return err
	}
	added, updated := 0, 0
	for _, h := range index {
		if v, _, ok := st.Get(h.key); ok && len(v) == 1 && v[0] == h.dir {
			continue
		}
		if err := st.Set(h.key, []byte{h.dir}); err != nil {
			return err
		}
		added++
	}
	for _, e := range list {
		enc := e.acct.encode(true)
		if bytes.Equal(enc, e.old) {
			continue
		}
		if err := st.Set(accountKey(e.id), enc); err != nil {
			return err
		}
		updated++
	}
	sdk.Log(sdk.LevelInfo, fmt.Sprintf("ledger: migrated from %s at index %d: %d accounts (%d updated), %d transactions, %d history keys added",
		m.FromVersion, m.Index, len(list), updated, txs, added))
	return nil
}

package ledger

import (
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
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

// Limits of the protocol.
const (
	MaxAccountLen = 64   // the longest account name, in bytes
	MaxRefLen     = 128  // the longest client reference, in bytes
	DefaultLimit  = 100  // page size of the listing queries
	MaxLimit      = 1000 // their largest page
)

// V1 is version 1.0.0 of the ledger.
var V1 = newLedger(abi.Info{Name: Name, Version: "1.0.0",
	Description: "bank ledger: accounts, deposits (the only way to mint) and transfers that never overdraw"}, false)

// V2 is version 2.0.0: V1 plus per-account transaction counts and history,
// with a migration (Migrate) that builds them from v1's transactions.
var V2 = v2{newLedger(abi.Info{Name: Name, Version: "2.0.0",
	Description: "bank ledger with per-account history: accounts, deposits (the only way to mint) and transfers that never overdraw"}, true)}

type v2 struct{ *sdk.Router }

var _ sdk.Migrator = V2

// The state (see the package documentation for the layout).
var (
	accounts = sdk.NewMap[string, account]("a/", sdk.StringKey)
	totals   = sdk.NewItem[supplyResp]("m/totals")
	txs      = sdk.NewMap[uint64, transaction]("t/", sdk.Uint64Key)
	refs     = sdk.NewMap[string, uint64]("r/", sdk.StringKey)
	history  = sdk.NewMap[sdk.Pair[string, uint64], byte]("h/", sdk.PairKey(sdk.StringKey, sdk.Uint64Key))
)

// account is the record stored under a/<name>.
type account struct {
	Balance     uint64 `msgpack:"balance"`
	Opened      int64  `msgpack:"opened"`       // leader time of the open command, Unix ns
	OpenedIndex uint64 `msgpack:"opened_index"` // its log index
	// Maintained by v2 (and rebuilt by its migration); v1 drops them.
	TxCount uint64 `msgpack:"tx_count,omitempty"` // deposits and transfers involving the account
	LastTx  uint64 `msgpack:"last_tx,omitempty"`  // index of the latest of them
}

// transaction is the record stored under t/<index>.
type transaction struct {
	Index  uint64 `msgpack:"index"`
	Time   int64  `msgpack:"time"` // leader time, Unix ns
	Kind   string `msgpack:"kind"`
	From   string `msgpack:"from,omitempty"` // transfers only
	To     string `msgpack:"to"`
	Amount uint64 `msgpack:"amount"`
	Ref    string `msgpack:"ref,omitempty"`
}

// Directions recorded as the value of a history key.
const (
	dirDeposit = 'd'
	dirIn      = 'i'
	dirOut     = 'o'
)

// Requests. Their Check methods hold the stateless rules, which the Router
// runs before a command reaches the log as well as when it applies.
type (
	openReq struct {
		Account string `msgpack:"account"`
	}
	depositReq struct {
		Account string  `msgpack:"account"`
		Amount  uint64  `msgpack:"amount"`
		Ref     *string `msgpack:"ref"`
	}
	transferReq struct {
		From   string  `msgpack:"from"`
		To     string  `msgpack:"to"`
		Amount uint64  `msgpack:"amount"`
		Ref    *string `msgpack:"ref"`
	}
	accountReq struct {
		Account string `msgpack:"account"`
	}
	accountsReq struct {
		Start string `msgpack:"start"`
		Limit *int   `msgpack:"limit"`
	}
	txReq struct {
		Index *uint64 `msgpack:"index"`
	}
	historyReq struct {
		Account string `msgpack:"account"`
		After   uint64 `msgpack:"after"`
		Limit   *int   `msgpack:"limit"`
	}
)

func (r *openReq) Check() error    { return checkAccount("account", r.Account) }
func (r *accountReq) Check() error { return checkAccount("account", r.Account) }
func (r *accountsReq) Check() error {
	return checkLimit(r.Limit)
}
func (r *historyReq) Check() error {
	return cmpErr(checkAccount("account", r.Account), checkLimit(r.Limit))
}
func (r *txReq) Check() error {
	if r.Index == nil {
		return sdk.BadRequest("missing index")
	}
	return nil
}
func (r *depositReq) Check() error {
	return cmpErr(checkAccount("account", r.Account), checkAmount(r.Amount), checkRef(r.Ref))
}
func (r *transferReq) Check() error {
	if err := cmpErr(checkAccount("from", r.From), checkAccount("to", r.To), checkAmount(r.Amount), checkRef(r.Ref)); err != nil {
		return err
	}
	if r.From == r.To {
		return sdk.BadRequest("cannot transfer from account %s to itself", r.From)
	}
	return nil
}

// cmpErr returns the first non-nil error.
func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ValidAccount reports whether name is a valid account name: 1 to
// MaxAccountLen ASCII letters, digits, '.', '_' or '-'.
func ValidAccount(name string) bool {
	if len(name) == 0 || len(name) > MaxAccountLen {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkAccount(field, name string) error {
	if name == "" {
		return sdk.BadRequest("missing %s", field)
	}
	if !ValidAccount(name) {
		return sdk.BadRequest("invalid account name %q in %s: use 1 to %d letters, digits, '.', '_' or '-'", cut(name), field, MaxAccountLen)
	}
	return nil
}

func checkAmount(n uint64) error {
	if n == 0 {
		return sdk.BadRequest("amount must be an integer from 1 to %d", uint64(math.MaxUint64))
	}
	return nil
}

func checkRef(ref *string) error {
	if ref != nil && (len(*ref) == 0 || len(*ref) > MaxRefLen) {
		return sdk.BadRequest("ref must be a string of 1 to %d bytes", MaxRefLen)
	}
	return nil
}

func checkLimit(limit *int) error {
	if limit != nil && (*limit < 1 || *limit > MaxLimit) {
		return sdk.BadRequest("limit must be an integer between 1 and %d", MaxLimit)
	}
	return nil
}

func limitOf(limit *int) int {
	if limit == nil {
		return DefaultLimit
	}
	return *limit
}

// cut shortens s for an error message.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Results.
type (
	openResp struct {
		Account string `msgpack:"account"`
		Balance uint64 `msgpack:"balance"`
		Opened  string `msgpack:"opened"`
	}
	depositResp struct {
		Tx      uint64 `msgpack:"tx"`
		Account string `msgpack:"account"`
		Balance uint64 `msgpack:"balance"`
		Supply  uint64 `msgpack:"supply"`
	}
	transferResp struct {
		Tx          uint64 `msgpack:"tx"`
		From        string `msgpack:"from"`
		To          string `msgpack:"to"`
		Amount      uint64 `msgpack:"amount"`
		FromBalance uint64 `msgpack:"from_balance"`
		ToBalance   uint64 `msgpack:"to_balance"`
	}
	balanceResp struct {
		Account string  `msgpack:"account"`
		Balance uint64  `msgpack:"balance"`
		Opened  string  `msgpack:"opened"`
		TxCount *uint64 `msgpack:"tx_count,omitempty"` // v2
		LastTx  *uint64 `msgpack:"last_tx,omitempty"`  // v2
	}
	// supplyResp is also the record stored under m/totals.
	supplyResp struct {
		Supply   uint64 `msgpack:"supply"` // the sum of every balance
		Accounts uint64 `msgpack:"accounts"`
	}
	accountEntry struct {
		Account string `msgpack:"account"`
		Balance uint64 `msgpack:"balance"`
	}
	accountsResp struct {
		Accounts []accountEntry `msgpack:"accounts"`
		Next     string         `msgpack:"next,omitempty"`
	}
	auditResp struct {
		Supply   uint64 `msgpack:"supply"`
		Sum      uint64 `msgpack:"sum"`
		Accounts uint64 `msgpack:"accounts"`
		Counted  uint64 `msgpack:"counted"`
		OK       bool   `msgpack:"ok"`
	}
	// txResp is a transaction as queries answer it.
	txResp struct {
		Tx     uint64 `msgpack:"tx"`
		Time   string `msgpack:"time"`
		Kind   string `msgpack:"kind"`
		From   string `msgpack:"from,omitempty"`
		To     string `msgpack:"to"`
		Amount uint64 `msgpack:"amount"`
		Ref    string `msgpack:"ref,omitempty"`
	}
	historyResp struct {
		Account      string   `msgpack:"account"`
		Transactions []txResp `msgpack:"transactions"`
		Next         uint64   `msgpack:"next,omitempty"`
	}
)

// FormatTime renders a leader time (Unix ns) as the answers carry it: what
// time.Unix(0, ns).UTC().Format(time.RFC3339Nano) gives, for every int64
// (years 1677 to 2262), written directly because time.Format costs some
// 7,000 fuel inside a plugin, a history page's entry each.
func FormatTime(ns int64) string {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	days, sod := sec/86400, sec%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	// Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil,
	// inverted): days are never negative after the shift, for any int64 ns.
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	year := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if month > 12 {
		month -= 12
		year++
	}
	// 2006-01-02T15:04:05.999999999Z, two digits at a time.
	var b [30]byte
	put2(b[0:], year/100)
	put2(b[2:], year%100)
	b[4] = '-'
	put2(b[5:], month)
	b[7] = '-'
	put2(b[8:], day)
	b[10] = 'T'
	put2(b[11:], sod/3600)
	b[13] = ':'
	put2(b[14:], sod/60%60)
	b[16] = ':'
	put2(b[17:], sod%60)
	n := 19
	if frac != 0 {
		b[19] = '.'
		put2(b[20:], frac/1e7)
		put2(b[22:], frac/1e5%100)
		put2(b[24:], frac/1e3%100)
		put2(b[26:], frac/10%100)
		b[28] = byte('0' + frac%10)
		n = 29
		for b[n-1] == '0' {
			n--
		}
	}
	b[n] = 'Z'
	return string(b[:n+1])
}

// put2 writes v (0 to 99) in two decimal digits.
func put2(b []byte, v int64) {
	const digits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
		"8081828384858687888990919293949596979899"
	b[0], b[1] = digits[2*v], digits[2*v+1]
}

func (t transaction) answer() txResp {
	return txResp{Tx: t.Index, Time: FormatTime(t.Time), Kind: t.Kind, From: t.From, To: t.To, Amount: t.Amount, Ref: t.Ref}
}

// ledger is the logic shared by both versions.
type ledger struct{ v2 bool }

func newLedger(info abi.Info, isV2 bool) *sdk.Router {
	l := ledger{v2: isV2}
	r := sdk.NewRouter(info)
	sdk.Command(r, "open", l.open)
	sdk.Command(r, "deposit", l.deposit)
	sdk.Command(r, "transfer", l.transfer)
	sdk.Query(r, "balance", l.balance)
	sdk.Query(r, "supply", func(st sdk.State, _ struct{}) (supplyResp, error) { return totals.LoadOr(st, supplyResp{}) })
	sdk.Query(r, "accounts", listAccounts)
	sdk.Query(r, "audit", audit)
	sdk.Query(r, "tx", txQuery)
	if isV2 {
		sdk.Query(r, "history", listHistory)
	}
	return r
}

// loadAccount reads an account, failing with CodeNotFound if it does not
// exist.
func loadAccount(st sdk.State, id string) (account, error) {
	a, ok, err := accounts.MayLoad(st, id)
	if err == nil && !ok {
		err = sdk.NotFound("account %s not found", id)
	}
	return a, err
}

// saveAccount stores an account involved in transaction index (0: none);
// v2 counts the transaction, v1 drops the fields v2 maintains.
func (l ledger) saveAccount(st sdk.State, id string, a account, index uint64) error {
	switch {
	case !l.v2:
		a.TxCount, a.LastTx = 0, 0
	case index != 0:
		a.TxCount++
		a.LastTx = index
	}
	return accounts.Save(st, id, a)
}

// record stores a deposit's or transfer's transaction record, its ref and,
// in v2, its history keys. It fails with CodeConflict if the ref was used.
func (l ledger) record(st sdk.State, t transaction, ref *string) error {
	if ref != nil {
		if tx, ok, err := refs.MayLoad(st, *ref); err != nil || ok {
			return cmpErr(err, sdk.Conflict("duplicate ref %q: already applied as tx %d", *ref, tx))
		}
		t.Ref = *ref
		if err := refs.Save(st, t.Ref, t.Index); err != nil {
			return err
		}
	}
	if err := txs.Save(st, t.Index, t); err != nil {
		return err
	}
	if !l.v2 {
		return nil
	}
	if t.From != "" {
		if err := history.Save(st, sdk.Pair[string, uint64]{A: t.From, B: t.Index}, dirOut); err != nil {
			return err
		}
		return history.Save(st, sdk.Pair[string, uint64]{A: t.To, B: t.Index}, dirIn)
	}
	return history.Save(st, sdk.Pair[string, uint64]{A: t.To, B: t.Index}, dirDeposit)
}

func (l ledger) open(st sdk.State, e sdk.Entry, q openReq) (openResp, error) {
	if accounts.Has(st, q.Account) {
		return openResp{}, sdk.Conflict("account %s already exists", q.Account)
	}
	if err := l.saveAccount(st, q.Account, account{Opened: e.Time, OpenedIndex: e.Index}, 0); err != nil {
		return openResp{}, err
	}
	_, err := totals.Update(st, func(t supplyResp, _ bool) (supplyResp, error) { t.Accounts++; return t, nil })
	return openResp{Account: q.Account, Opened: FormatTime(e.Time)}, err
}

// deposit mints amount into an account: the only operation that changes the
// supply.
func (l ledger) deposit(st sdk.State, e sdk.Entry, q depositReq) (depositResp, error) {
	a, err := loadAccount(st, q.Account)
	if err != nil {
		return depositResp{}, err
	}
	t, err := totals.LoadOr(st, supplyResp{})
	if err != nil {
		return depositResp{}, err
	}
	if t.Supply > math.MaxUint64-q.Amount {
		return depositResp{}, sdk.Errorf(CodeSupplyOverflow, "a deposit of %d would take the supply %d past %d", q.Amount, t.Supply, uint64(math.MaxUint64))
	}
	if a.Balance > t.Supply {
		return depositResp{}, sdk.Errorf(abi.CodeInternal, "invariant broken: account %s holds %d, more than the supply %d", q.Account, a.Balance, t.Supply)
	}
	a.Balance += q.Amount // cannot overflow: a.Balance <= t.Supply
	t.Supply += q.Amount
	if err := cmpErr(l.saveAccount(st, q.Account, a, e.Index), totals.Save(st, t)); err != nil {
		return depositResp{}, err
	}
	err = l.record(st, transaction{Index: e.Index, Time: e.Time, Kind: "deposit", To: q.Account, Amount: q.Amount}, q.Ref)
	return depositResp{Tx: e.Index, Account: q.Account, Balance: a.Balance, Supply: t.Supply}, err
}

// transfer moves amount between two accounts; it never overdraws and leaves
// the supply unchanged.
func (l ledger) transfer(st sdk.State, e sdk.Entry, q transferReq) (transferResp, error) {
	fa, err := loadAccount(st, q.From)
	if err != nil {
		return transferResp{}, err
	}
	ta, err := loadAccount(st, q.To)
	if err != nil {
		return transferResp{}, err
	}
	if fa.Balance < q.Amount {
		return transferResp{}, sdk.Errorf(CodeInsufficientFunds, "insufficient funds: account %s holds %d, the transfer needs %d", q.From, fa.Balance, q.Amount)
	}
	sum, carry := bits.Add64(ta.Balance, q.Amount, 0)
	if carry != 0 {
		return transferResp{}, sdk.Errorf(abi.CodeInternal, "invariant broken: account %s would exceed %d", q.To, uint64(math.MaxUint64))
	}
	fa.Balance -= q.Amount
	ta.Balance = sum
	if err := cmpErr(l.saveAccount(st, q.From, fa, e.Index), l.saveAccount(st, q.To, ta, e.Index)); err != nil {
		return transferResp{}, err
	}
	err = l.record(st, transaction{Index: e.Index, Time: e.Time, Kind: "transfer", From: q.From, To: q.To, Amount: q.Amount}, q.Ref)
	return transferResp{Tx: e.Index, From: q.From, To: q.To, Amount: q.Amount, FromBalance: fa.Balance, ToBalance: ta.Balance}, err
}

func (l ledger) balance(st sdk.State, q accountReq) (balanceResp, error) {
	a, err := loadAccount(st, q.Account)
	r := balanceResp{Account: q.Account, Balance: a.Balance, Opened: FormatTime(a.Opened)}
	if l.v2 {
		r.TxCount, r.LastTx = &a.TxCount, &a.LastTx
	}
	return r, err
}

func listAccounts(st sdk.State, q accountsReq) (accountsResp, error) {
	limit := limitOf(q.Limit)
	r := accountsResp{Accounts: []accountEntry{}}
	var err error
	for id, a := range accounts.From(st, q.Start, &err) {
		if len(r.Accounts) == limit {
			r.Next = id
			break
		}
		r.Accounts = append(r.Accounts, accountEntry{id, a.Balance})
	}
	return r, err
}

// audit recomputes the sum of every balance and compares it with the supply.
func audit(st sdk.State, _ struct{}) (auditResp, error) {
	t, err := totals.LoadOr(st, supplyResp{})
	if err != nil {
		return auditResp{}, err
	}
	r := auditResp{Supply: t.Supply, Accounts: t.Accounts}
	overflow := false
	for _, a := range accounts.All(st, &err) {
		var carry uint64
		r.Sum, carry = bits.Add64(r.Sum, a.Balance, 0)
		overflow = overflow || carry != 0
		r.Counted++
	}
	r.OK = !overflow && r.Sum == t.Supply && r.Counted == t.Accounts
	return r, err
}

func txQuery(st sdk.State, q txReq) (txResp, error) {
	t, ok, err := txs.MayLoad(st, *q.Index)
	if err == nil && !ok {
		err = sdk.NotFound("no transaction at index %d", *q.Index)
	}
	return t.answer(), err
}

// listHistory lists an account's transactions through v2's history index.
func listHistory(st sdk.State, q historyReq) (historyResp, error) {
	r := historyResp{Account: q.Account, Transactions: []txResp{}}
	if _, err := loadAccount(st, q.Account); err != nil || q.After == math.MaxUint64 {
		return r, err
	}
	limit := limitOf(q.Limit)
	var err error
	for k := range history.From(st, sdk.Pair[string, uint64]{A: q.Account, B: q.After + 1}, &err) {
		if k.A != q.Account {
			break
		}
		if len(r.Transactions) == limit {
			r.Next = r.Transactions[limit-1].Tx // continue after the last one returned
			break
		}
		t, ok, lerr := txs.MayLoad(st, k.B)
		if lerr == nil && !ok {
			lerr = sdk.Errorf(abi.CodeInternal, "history of %s names tx %d, which does not exist", q.Account, k.B)
		}
		if lerr != nil {
			return r, lerr
		}
		r.Transactions = append(r.Transactions, t.answer())
	}
	return r, err
}

// Migrate implements sdk.Migrator. It accepts the state of ledger 1.x (and
// of 2.x, so that redeploying v2 is harmless) and (re)builds what v2
// maintains from the transaction records: each account's tx_count and
// last_tx, and the h/ history index. It is idempotent, so it also repairs the
// index after a downgrade to v1 and a new upgrade. It runs in one call, at
// the deploy's log index; a very large ledger would need a migration in
// steps.
func (v2) Migrate(st sdk.State, m abi.Migration) error {
	if !strings.HasPrefix(m.FromVersion, "1.") && !strings.HasPrefix(m.FromVersion, "2.") {
		return sdk.Conflict("ledger 2.0.0 cannot migrate the state of version %q: only ledger 1.x or 2.x", m.FromVersion)
	}
	type entry struct{ old, acct account }
	type party struct {
		id  string
		dir byte
	}
	byID := map[string]*entry{}
	var ids []string // in key order
	var err error
	for id, a := range accounts.All(st, &err) {
		byID[id] = &entry{old: a, acct: account{Balance: a.Balance, Opened: a.Opened, OpenedIndex: a.OpenedIndex}}
		ids = append(ids, id)
	}
	if err != nil {
		return err
	}
	ntx, added, updated := 0, 0, 0
	// Each transaction's history keys are written as they are visited: the
	// iterator copied its page, and h/ keys are outside t/.
	for _, t := range txs.All(st, &err) {
		ntx++
		parties := []party{{t.To, dirDeposit}}
		if t.Kind == "transfer" {
			parties = []party{{t.From, dirOut}, {t.To, dirIn}}
		}
		for _, p := range parties {
			e := byID[p.id]
			if e == nil {
				return sdk.Errorf(abi.CodeInternal, "tx %d names account %s, which does not exist", t.Index, p.id)
			}
			e.acct.TxCount++
			e.acct.LastTx = t.Index
			k := sdk.Pair[string, uint64]{A: p.id, B: t.Index}
			if d, ok, _ := history.MayLoad(st, k); ok && d == p.dir {
				continue
			}
			if err := history.Save(st, k, p.dir); err != nil {
				return err
			}
			added++
		}
	}
	if err != nil {
		return err
	}
	for _, id := range ids {
		if e := byID[id]; e.acct != e.old {
			if err := accounts.Save(st, id, e.acct); err != nil {
				return err
			}
			updated++
		}
	}
	sdk.Log(sdk.LevelInfo, fmt.Sprintf("ledger: migrated from %s at index %d: %d accounts (%d updated), %d transactions, %d history keys added",
		m.FromVersion, m.Index, len(ids), updated, ntx, added))
	return nil
}

package ledger_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/examples/ledger/ledger"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// t0 is the leader time of the first entry; entry i is i seconds later.
var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// harness applies commands to a MemState with increasing indexes.
type harness struct {
	t     *testing.T
	st    *sdk.MemState
	p     sdk.Plugin
	index uint64
}

func newHarness(t *testing.T, p sdk.Plugin) *harness {
	return &harness{t: t, st: sdk.NewMemState(), p: p}
}

func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type m = map[string]any

func (h *harness) apply(cmd any) abi.Result {
	h.t.Helper()
	h.index++
	data, ok := cmd.([]byte)
	if !ok {
		data = enc(h.t, cmd)
	}
	e := abi.Entry{Index: h.index, Term: 1, Time: t0.Add(time.Duration(h.index) * time.Second).UnixNano(), Data: data}
	return h.st.Apply(h.p, e)[0]
}

func (h *harness) query(q any) abi.Result {
	h.t.Helper()
	data, ok := q.([]byte)
	if !ok {
		data = enc(h.t, q)
	}
	return h.st.Query(h.p, data)
}

// ok applies cmd, requires success and decodes the result into out (if not nil).
func (h *harness) ok(cmd any, out any) {
	h.t.Helper()
	r := h.apply(cmd)
	if !r.OK() {
		h.t.Fatalf("%v: %v", cmd, r.Err())
	}
	if out != nil {
		if err := msgpack.Unmarshal(r.Data, out); err != nil {
			h.t.Fatalf("%v: decoding %x: %v", cmd, r.Data, err)
		}
	}
}

func (h *harness) get(q any, out any) {
	h.t.Helper()
	r := h.query(q)
	if !r.OK() {
		h.t.Fatalf("%v: %v", q, r.Err())
	}
	if err := msgpack.Unmarshal(r.Data, out); err != nil {
		h.t.Fatalf("%v: decoding %x: %v", q, r.Data, err)
	}
}

func (h *harness) fails(cmd any, code abi.Code, msg string) {
	h.t.Helper()
	before := h.st.Dump()
	r := h.apply(cmd)
	if r.Code != code || !strings.Contains(string(r.Data), msg) {
		h.t.Fatalf("%v: got %v %q, want %v containing %q", cmd, r.Code, r.Data, code, msg)
	}
	if after := h.st.Dump(); fmt.Sprint(after) != fmt.Sprint(before) {
		h.t.Fatalf("%v: a failed command changed the state", cmd)
	}
}

func (h *harness) queryFails(q any, code abi.Code, msg string) {
	h.t.Helper()
	r := h.query(q)
	if r.Code != code || !strings.Contains(string(r.Data), msg) {
		h.t.Fatalf("%v: got %v %q, want %v containing %q", q, r.Code, r.Data, code, msg)
	}
}

type balance struct {
	Account string `msgpack:"account"`
	Balance uint64 `msgpack:"balance"`
	Opened  string `msgpack:"opened"`
	TxCount uint64 `msgpack:"tx_count"`
	LastTx  uint64 `msgpack:"last_tx"`
}

type supply struct {
	Supply   uint64 `msgpack:"supply"`
	Accounts uint64 `msgpack:"accounts"`
}

type auditResult struct {
	Supply   uint64 `msgpack:"supply"`
	Sum      uint64 `msgpack:"sum"`
	Accounts uint64 `msgpack:"accounts"`
	Counted  uint64 `msgpack:"counted"`
	OK       bool   `msgpack:"ok"`
}

type tx struct {
	Tx     uint64 `msgpack:"tx"`
	Time   string `msgpack:"time"`
	Kind   string `msgpack:"kind"`
	From   string `msgpack:"from"`
	To     string `msgpack:"to"`
	Amount uint64 `msgpack:"amount"`
	Ref    string `msgpack:"ref"`
}

func TestInfo(t *testing.T) {
	if i := (ledger.V1).Info(); i.Name != "ledger" || i.Version != "1.0.0" {
		t.Fatalf("v1 info %+v", i)
	}
	if i := (ledger.V2).Info(); i.Name != "ledger" || i.Version != "2.0.0" {
		t.Fatalf("v2 info %+v", i)
	}
}

func TestLedger(t *testing.T) {
	h := newHarness(t, ledger.V1)
	var opened struct {
		Account string `msgpack:"account"`
		Balance uint64 `msgpack:"balance"`
		Opened  string `msgpack:"opened"`
	}
	h.ok(m{"op": "open", "account": "alice"}, &opened)
	if opened.Account != "alice" || opened.Balance != 0 || opened.Opened != "2025-03-01T09:00:01Z" {
		t.Fatalf("open: %+v", opened)
	}
	h.ok(m{"op": "open", "account": []byte("bob")}, nil) // bin names are accepted

	var dep struct {
		Tx      uint64 `msgpack:"tx"`
		Account string `msgpack:"account"`
		Balance uint64 `msgpack:"balance"`
		Supply  uint64 `msgpack:"supply"`
	}
	h.ok(m{"op": "deposit", "account": "alice", "amount": 100, "ref": "dep-1"}, &dep)
	if dep.Tx != 3 || dep.Balance != 100 || dep.Supply != 100 {
		t.Fatalf("deposit: %+v", dep)
	}
	var tr struct {
		Tx          uint64 `msgpack:"tx"`
		From        string `msgpack:"from"`
		To          string `msgpack:"to"`
		Amount      uint64 `msgpack:"amount"`
		FromBalance uint64 `msgpack:"from_balance"`
		ToBalance   uint64 `msgpack:"to_balance"`
	}
	h.ok(m{"op": "transfer", "from": "alice", "to": "bob", "amount": uint8(30)}, &tr)
	if tr.Tx != 4 || tr.FromBalance != 70 || tr.ToBalance != 30 || tr.Amount != 30 {
		t.Fatalf("transfer: %+v", tr)
	}

	var b balance
	h.get(m{"op": "balance", "account": "bob"}, &b)
	if b.Balance != 30 || b.Opened != "2025-03-01T09:00:02Z" {
		t.Fatalf("balance: %+v", b)
	}
	var s supply
	h.get(m{"op": "supply"}, &s)
	if s != (supply{100, 2}) {
		t.Fatalf("supply: %+v", s)
	}
	var x tx
	h.get(m{"op": "tx", "index": 4}, &x)
	if x != (tx{Tx: 4, Time: "2025-03-01T09:00:04Z", Kind: "transfer", From: "alice", To: "bob", Amount: 30}) {
		t.Fatalf("tx 4: %+v", x)
	}
	x = tx{}
	h.get(m{"op": "tx", "index": 3}, &x)
	if x.Kind != "deposit" || x.To != "alice" || x.Ref != "dep-1" || x.From != "" {
		t.Fatalf("tx 3: %+v", x)
	}
	var a auditResult
	h.get(m{"op": "audit"}, &a)
	if !a.OK || a.Sum != 100 || a.Counted != 2 {
		t.Fatalf("audit: %+v", a)
	}
	// v1 has no history query.
	h.queryFails(m{"op": "history", "account": "alice"}, abi.CodeBadRequest, `unknown query op "history"`)
}

func TestErrors(t *testing.T) {
	h := newHarness(t, ledger.V1)
	h.ok(m{"op": "open", "account": "alice"}, nil)
	h.ok(m{"op": "open", "account": "bob"}, nil)
	h.ok(m{"op": "deposit", "account": "alice", "amount": 50, "ref": "r1"}, nil)

	bad := abi.CodeBadRequest
	for _, c := range []struct {
		cmd  any
		code abi.Code
		msg  string
	}{
		{[]byte{0xc1}, bad, "command: expected a MsgPack map"},
		{[]byte{0x01}, bad, "command: expected a MsgPack map"},
		{enc(t, map[int]int{1: 2}), bad, `missing "op" field`},
		{m{}, bad, `missing "op" field`},
		{m{"op": 7}, bad, `the "op" field must be a string`},
		{m{"op": "burn"}, bad, `unknown command op "burn" (commands: deposit, open, transfer)`},
		{m{"op": "OPEN", "account": "x"}, bad, `unknown command op "OPEN"`},
		{m{"op": "audit"}, bad, `op "audit" is a query`},
		{m{"op": "open"}, bad, "missing account"},
		{m{"op": "open", "account": 5}, bad, "bad input for ledger.openReq"},
		{m{"op": "open", "account": "a/b"}, bad, `invalid account name "a/b"`},
		{m{"op": "open", "account": ""}, bad, "missing account"},
		{m{"op": "open", "account": strings.Repeat("x", 65)}, bad, "invalid account name"},
		{m{"op": "open", "account": "alice"}, abi.CodeConflict, "account alice already exists"},
		{m{"op": "deposit", "account": "alice"}, bad, "amount must be an integer from 1"},
		{m{"op": "deposit", "account": "alice", "amount": 0}, bad, "amount must be an integer from 1"},
		{m{"op": "deposit", "account": "alice", "amount": -5}, bad, "-5 does not fit in uint64"},
		{m{"op": "deposit", "account": "alice", "amount": 1.5}, bad, "bad input for ledger.depositReq"},
		{m{"op": "deposit", "account": "alice", "amount": "10"}, bad, "bad input for ledger.depositReq"},
		{m{"op": "deposit", "account": "carol", "amount": 1}, abi.CodeNotFound, "account carol not found"},
		{m{"op": "deposit", "account": "alice", "amount": 1, "ref": ""}, bad, "ref must be a string of 1 to 128 bytes"},
		{m{"op": "deposit", "account": "alice", "amount": 1, "ref": "r1"}, abi.CodeConflict, `duplicate ref "r1": already applied as tx 3`},
		{m{"op": "deposit", "account": "alice", "amount": uint64(math.MaxUint64)}, ledger.CodeSupplyOverflow, "would take the supply 50 past"},
		{m{"op": "transfer", "to": "bob", "amount": 1}, bad, "missing from"},
		{m{"op": "transfer", "from": "alice", "amount": 1}, bad, "missing to"},
		{m{"op": "transfer", "from": "alice", "to": "alice", "amount": 1}, bad, "to itself"},
		{m{"op": "transfer", "from": "alice", "to": "carol", "amount": 1}, abi.CodeNotFound, "account carol not found"},
		{m{"op": "transfer", "from": "carol", "to": "bob", "amount": 1}, abi.CodeNotFound, "account carol not found"},
		{m{"op": "transfer", "from": "alice", "to": "bob", "amount": 51}, ledger.CodeInsufficientFunds, "insufficient funds: account alice holds 50, the transfer needs 51"},
		{m{"op": "transfer", "from": "bob", "to": "alice", "amount": 1}, ledger.CodeInsufficientFunds, "account bob holds 0"},
		{m{"op": "transfer", "from": "alice", "to": "bob", "amount": 1, "ref": "r1"}, abi.CodeConflict, "duplicate ref"},
	} {
		h.fails(c.cmd, c.code, c.msg)
		// Every bad request is refused by ValidateCommand too, which the
		// leader runs before the log; the others need the state.
		data, ok := c.cmd.([]byte)
		if !ok {
			data = enc(t, c.cmd)
		}
		err := ledger.V1.ValidateCommand(data)
		if (c.code == bad) != (err != nil) || (err != nil && !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("ValidateCommand(%v) = %v; the command fails with %v %q", c.cmd, err, c.code, c.msg)
		}
	}

	for _, c := range []struct {
		q    any
		code abi.Code
		msg  string
	}{
		{[]byte("{}"), bad, "query: expected a MsgPack map"},
		{m{"op": "deposit"}, bad, `op "deposit" is a command`},
		{m{"op": "balance", "account": "carol"}, abi.CodeNotFound, "account carol not found"},
		{m{"op": "tx"}, bad, "missing index"},
		{m{"op": "tx", "index": -1}, bad, "-1 does not fit in uint64"},
		{m{"op": "tx", "index": 1}, abi.CodeNotFound, "no transaction at index 1"},
		{m{"op": "accounts", "limit": 0}, bad, "limit must be an integer between 1 and 1000"},
		{m{"op": "accounts", "limit": 1001}, bad, "limit must be an integer between 1 and 1000"},
		{m{"op": "accounts", "start": 1}, bad, "bad input for ledger.accountsReq"},
	} {
		h.queryFails(c.q, c.code, c.msg)
	}
}

func TestAccountsPaging(t *testing.T) {
	h := newHarness(t, ledger.V1)
	var names []string
	for i := range 25 {
		name := fmt.Sprintf("acct-%02d", i)
		names = append(names, name)
		h.ok(m{"op": "open", "account": name}, nil)
		h.ok(m{"op": "deposit", "account": name, "amount": i + 1}, nil)
	}
	type page struct {
		Accounts []struct {
			Account string `msgpack:"account"`
			Balance uint64 `msgpack:"balance"`
		} `msgpack:"accounts"`
		Next string `msgpack:"next"`
	}
	var got []string
	start := ""
	for pages := 0; ; pages++ {
		var p page
		h.get(m{"op": "accounts", "start": start, "limit": 10}, &p)
		for _, a := range p.Accounts {
			got = append(got, a.Account)
			var i int
			fmt.Sscanf(a.Account, "acct-%d", &i)
			if a.Balance != uint64(i+1) {
				t.Fatalf("%s balance %d", a.Account, a.Balance)
			}
		}
		if p.Next == "" {
			if pages != 2 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
		start = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("listed %v", got)
	}
}

// model is the expected ledger.
type model struct {
	balances map[string]uint64
	supply   uint64
}

// randomOps applies n random commands (opens, deposits, transfers that
// sometimes overdraw or name a missing account) and checks each result and
// the invariants against the model.
func randomOps(t *testing.T, h *harness, seed uint64, n int) *model {
	rng := rand.New(rand.NewPCG(seed, 0))
	md := &model{balances: map[string]uint64{}}
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for i := 0; i < n; i++ {
		name := names[rng.IntN(len(names))]
		switch k := rng.IntN(10); {
		case k == 0:
			r := h.apply(m{"op": "open", "account": name})
			_, exists := md.balances[name]
			if exists != (r.Code == abi.CodeConflict) || (!exists && !r.OK()) {
				t.Fatalf("open %s: %v (exists %v)", name, r.Err(), exists)
			}
			md.balances[name] += 0
		case k <= 2:
			amount := uint64(rng.IntN(1000) + 1)
			r := h.apply(m{"op": "deposit", "account": name, "amount": amount})
			if _, exists := md.balances[name]; !exists {
				if r.Code != abi.CodeNotFound {
					t.Fatalf("deposit to missing %s: %v", name, r.Err())
				}
				continue
			}
			if !r.OK() {
				t.Fatalf("deposit: %v", r.Err())
			}
			md.balances[name] += amount
			md.supply += amount
		default:
			to := names[rng.IntN(len(names))]
			amount := uint64(rng.IntN(600) + 1)
			r := h.apply(m{"op": "transfer", "from": name, "to": to, "amount": amount})
			fb, fok := md.balances[name]
			_, tok := md.balances[to]
			var want abi.Code
			switch {
			case name == to:
				want = abi.CodeBadRequest
			case !fok || !tok:
				want = abi.CodeNotFound
			case fb < amount:
				want = ledger.CodeInsufficientFunds
			}
			if r.Code != want {
				t.Fatalf("transfer %s→%s %d (balance %d): %v, want %v", name, to, amount, fb, r.Err(), want)
			}
			if want == abi.CodeOK {
				md.balances[name] -= amount
				md.balances[to] += amount
			}
		}
		if i%50 == 0 {
			checkModel(t, h, md)
		}
	}
	checkModel(t, h, md)
	return md
}

func checkModel(t *testing.T, h *harness, md *model) {
	t.Helper()
	var a auditResult
	h.get(m{"op": "audit"}, &a)
	if !a.OK || a.Supply != md.supply || a.Counted != uint64(len(md.balances)) {
		t.Fatalf("audit %+v, model supply %d accounts %d", a, md.supply, len(md.balances))
	}
	for name, want := range md.balances {
		var b balance
		h.get(m{"op": "balance", "account": name}, &b)
		if b.Balance != want {
			t.Fatalf("%s: balance %d, model %d", name, b.Balance, want)
		}
	}
}

func TestRandomTransfers(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := newHarness(t, ledger.V2)
			randomOps(t, h, seed, 2000)
		})
	}
}

// TestMigrate: v1 state migrated by v2 keeps every balance and gains the
// transaction counts and the history of v1's transactions.
func TestMigrate(t *testing.T) {
	h := newHarness(t, ledger.V1)
	md := randomOps(t, h, 7, 500)
	h.ok(m{"op": "open", "account": "zed"}, nil)
	h.ok(m{"op": "deposit", "account": "zed", "amount": 5}, nil)
	h.ok(m{"op": "transfer", "from": "zed", "to": "a", "amount": 2}, nil)
	md.balances["zed"], md.balances["a"], md.supply = 3, md.balances["a"]+2, md.supply+5
	before := h.st.Dump()

	// Refused: not a ledger 1.x or 2.x.
	r := h.st.Migrate(ledger.V2, abi.Migration{FromHash: "x", FromVersion: "0.9.0", Index: h.index + 1})
	if r.Code != abi.CodeConflict || !strings.Contains(string(r.Data), `cannot migrate the state of version "0.9.0"`) {
		t.Fatalf("migrate from 0.9.0: %v", r.Err())
	}
	if fmt.Sprint(h.st.Dump()) != fmt.Sprint(before) {
		t.Fatal("a refused migration changed the state")
	}

	h.index++
	if r := h.st.Migrate(ledger.V2, abi.Migration{FromHash: "x", FromVersion: "1.0.0", Index: h.index}); !r.OK() {
		t.Fatal(r.Err())
	}
	h.p = ledger.V2
	checkModel(t, h, md)

	var b balance
	h.get(m{"op": "balance", "account": "zed"}, &b)
	if b.TxCount != 2 || b.LastTx != h.index-1 {
		t.Fatalf("zed after migration: %+v (migration at %d)", b, h.index)
	}
	type hist struct {
		Account      string `msgpack:"account"`
		Transactions []tx   `msgpack:"transactions"`
		Next         uint64 `msgpack:"next"`
	}
	var hz hist
	h.get(m{"op": "history", "account": "zed"}, &hz)
	if len(hz.Transactions) != 2 || hz.Transactions[0].Kind != "deposit" || hz.Transactions[1].To != "a" || hz.Next != 0 {
		t.Fatalf("zed history: %+v", hz)
	}
	// Every account's history lists exactly tx_count transactions, in order,
	// each naming the account; paging with "after" and "next" sees them all.
	for name := range md.balances {
		var b balance
		h.get(m{"op": "balance", "account": name}, &b)
		var all []tx
		after := uint64(0)
		for {
			var p hist
			h.get(m{"op": "history", "account": name, "after": after, "limit": 7}, &p)
			all = append(all, p.Transactions...)
			if p.Next == 0 {
				break
			}
			after = p.Next
		}
		if uint64(len(all)) != b.TxCount {
			t.Fatalf("%s: %d history entries, tx_count %d", name, len(all), b.TxCount)
		}
		for i, x := range all {
			if x.To != name && x.From != name || (i > 0 && x.Tx <= all[i-1].Tx) {
				t.Fatalf("%s history[%d] = %+v", name, i, x)
			}
		}
		if len(all) > 0 && all[len(all)-1].Tx != b.LastTx {
			t.Fatalf("%s: last_tx %d, history ends at %d", name, b.LastTx, all[len(all)-1].Tx)
		}
	}

	// v2 keeps maintaining the index.
	h.ok(m{"op": "deposit", "account": "zed", "amount": 1}, nil)
	h.get(m{"op": "history", "account": "zed"}, &hz)
	if len(hz.Transactions) != 3 || hz.Transactions[2].Tx != h.index {
		t.Fatalf("zed history after a v2 deposit: %+v", hz)
	}

	// Migrating again changes nothing (redeploying v2 is harmless).
	after := h.st.Dump()
	h.index++
	if r := h.st.Migrate(ledger.V2, abi.Migration{FromVersion: "2.0.0", Index: h.index}); !r.OK() {
		t.Fatal(r.Err())
	}
	if fmt.Sprint(h.st.Dump()) != fmt.Sprint(after) {
		t.Fatal("a second migration changed the state")
	}

	// A downgrade to v1 stops maintaining the index; the next upgrade repairs it.
	h.p = ledger.V1
	h.ok(m{"op": "transfer", "from": "zed", "to": "b", "amount": 1}, nil)
	h.index++
	if r := h.st.Migrate(ledger.V2, abi.Migration{FromVersion: "1.0.0", Index: h.index}); !r.OK() {
		t.Fatal(r.Err())
	}
	h.p = ledger.V2
	h.get(m{"op": "history", "account": "zed"}, &hz)
	h.get(m{"op": "balance", "account": "zed"}, &b)
	if len(hz.Transactions) != 4 || b.TxCount != 4 || b.Balance != 3 {
		t.Fatalf("zed after downgrade and upgrade: %+v, %+v", b, hz)
	}
}

// TestCommandBytesNotRetained: records never alias the command's bytes.
func TestCommandBytesNotRetained(t *testing.T) {
	h := newHarness(t, ledger.V1)
	cmd := enc(t, m{"op": "open", "account": "alice"})
	h.ok(cmd, nil)
	copy(cmd, bytes.Repeat([]byte{0}, len(cmd)))
	var b balance
	h.get(m{"op": "balance", "account": "alice"}, &b)
	if b.Account != "alice" {
		t.Fatalf("%+v", b)
	}
}

// TestFormatTime: FormatTime writes what time.Format(time.RFC3339Nano) does,
// for the extremes of int64, around the epoch, leap days and centuries, and
// random instants.
func TestFormatTime(t *testing.T) {
	check := func(ns int64) {
		if got, want := ledger.FormatTime(ns), time.Unix(0, ns).UTC().Format(time.RFC3339Nano); got != want {
			t.Fatalf("FormatTime(%d) = %s, want %s", ns, got, want)
		}
	}
	for _, ns := range []int64{0, 1, -1, 1e9, -1e9, 1e9 + 1, -1e9 - 1, 999999999, -999999999, 10, 100, 123456789000,
		math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1} {
		check(ns)
	}
	for _, d := range []time.Time{
		time.Date(2000, 2, 29, 23, 59, 59, 999999999, time.UTC), time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 2, 28, 12, 0, 0, 5e8, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC),
	} {
		for delta := int64(-2e9); delta <= 2e9; delta += 5e8 {
			check(d.UnixNano() + delta)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		ns := int64(r.Uint64())
		check(ns)
		check(ns / 1e9 * 1e9)   // whole seconds
		check(ns / 1e6 * 1e6)   // milliseconds
		check(ns >> r.IntN(63)) // nearer the epoch
	}
}

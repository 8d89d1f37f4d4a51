//go:build wasip1

// Command fuelprobe measures, in fuel, the pieces a ledger history entry is
// made of (fuel_test.go runs it). Each query op runs one piece n times; the
// test takes the difference between n and 0 iterations, so the dispatch and
// the request's decoding cancel out. The types mirror the ledger's
// (examples/ledger/ledger/ledger.go), whose are unexported.
package main

import (
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/examples/ledger/ledger"
	"github.com/raftkv/raftkv/plugins/sdk"
)

type transaction struct {
	Index  uint64 `msgpack:"index"`
	Time   int64  `msgpack:"time"`
	Kind   string `msgpack:"kind"`
	From   string `msgpack:"from,omitempty"`
	To     string `msgpack:"to"`
	Amount uint64 `msgpack:"amount"`
	Ref    string `msgpack:"ref,omitempty"`
}

type txResp struct {
	Tx     uint64 `msgpack:"tx"`
	Time   string `msgpack:"time"`
	Kind   string `msgpack:"kind"`
	From   string `msgpack:"from,omitempty"`
	To     string `msgpack:"to"`
	Amount uint64 `msgpack:"amount"`
	Ref    string `msgpack:"ref,omitempty"`
}

type historyResp struct {
	Account      string   `msgpack:"account"`
	Transactions []txResp `msgpack:"transactions"`
	Next         uint64   `msgpack:"next,omitempty"`
}

var (
	txs     = sdk.NewMap[uint64, transaction]("t/", sdk.Uint64Key)
	history = sdk.NewMap[sdk.Pair[string, uint64], byte]("h/", sdk.PairKey(sdk.StringKey, sdk.Uint64Key))
)

const t0 = 1740819600000000000 // 2025-03-01T09:00:00Z

// deposit is a deposit's record as the ledger stores it (62 bytes); transfer
// is a transfer with a ref (about 150 bytes).
var (
	deposit  = transaction{Index: 1234, Time: t0 + 1234e6, Kind: "deposit", To: "a", Amount: 1}
	transfer = transaction{Index: 123456, Time: t0 + 123456e6, Kind: "transfer", From: "savings-account-0001",
		To: "checking-account-0002", Amount: 123456789, Ref: "invoice-2025-03-000123-payment-ref"}
	depositRec, transferRec []byte
)

func mustMarshal(v any) []byte {
	b, err := sdk.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

type req struct {
	N int `msgpack:"n"`
}

type resp struct {
	Bytes int `msgpack:"bytes"`
}

var sink any

func init() {
	depositRec, transferRec = mustMarshal(deposit), mustMarshal(transfer)
	r := sdk.NewRouter(abi.Info{Name: "fuelprobe", Version: "1.0.0"})
	// seed writes n deposits of account "a" as the ledger v2 does: t/<i> and h/<a,i>.
	sdk.Command(r, "seed", func(st sdk.State, _ sdk.Entry, q req) (resp, error) {
		for i := 1; i <= q.N; i++ {
			t := deposit
			t.Index, t.Time = uint64(i), t0+int64(i)*1e6
			if err := txs.Save(st, t.Index, t); err != nil {
				return resp{}, err
			}
			if err := history.Save(st, sdk.Pair[string, uint64]{A: "a", B: t.Index}, 'd'); err != nil {
				return resp{}, err
			}
		}
		return resp{}, nil
	})
	loop := func(op string, rec []byte, f func(st sdk.State, i int) error) {
		sdk.Query(r, op, func(st sdk.State, q req) (resp, error) {
			for i := range q.N {
				if err := f(st, i); err != nil {
					return resp{}, err
				}
			}
			return resp{Bytes: len(rec)}, nil
		})
	}
	loop("noop", nil, func(sdk.State, int) error { return nil })
	loop("validate/deposit", depositRec, func(sdk.State, int) error { return abi.Validate(depositRec) })
	loop("validate/transfer", transferRec, func(sdk.State, int) error { return abi.Validate(transferRec) })
	loop("unmarshal/deposit", depositRec, func(sdk.State, int) error {
		var t transaction
		return abi.Unmarshal(depositRec, &t)
	})
	loop("unmarshal/transfer", transferRec, func(sdk.State, int) error {
		var t transaction
		return abi.Unmarshal(transferRec, &t)
	})
	loop("unmarshal/byte", []byte{'d'}, func(sdk.State, int) error {
		var b byte
		return abi.Unmarshal([]byte{'d'}, &b)
	})
	sample := txResp{Tx: deposit.Index, Time: "2025-03-01T09:00:01.234Z", Kind: deposit.Kind, To: deposit.To, Amount: deposit.Amount}
	loop("marshal/abi", nil, func(sdk.State, int) error {
		b, err := abi.Marshal(&sample)
		sink = b
		return err
	})
	loop("marshal/sdk", nil, func(sdk.State, int) error {
		b, err := sdk.Marshal(sample)
		sink = b
		return err
	})
	loop("formattime", nil, func(_ sdk.State, i int) error {
		sink = ledger.FormatTime(t0 + int64(i)*1e6)
		return nil
	})
	b24 := []byte("2025-03-01T09:00:01.234Z")
	loop("alloc/24", nil, func(sdk.State, int) error {
		sink = string(b24)
		return nil
	})
	loop("alloc/128", nil, func(sdk.State, int) error {
		sink = make([]byte, 0, 128)
		return nil
	})
	loop("time.Format", nil, func(_ sdk.State, i int) error {
		sink = time.Unix(0, t0+int64(i)*1e6).UTC().Format(time.RFC3339Nano)
		return nil
	})
	key := txs.Key(1)
	loop("state_get", nil, func(st sdk.State, _ int) error {
		st.Get(key)
		return nil
	})
	loop("mapload", nil, func(st sdk.State, i int) error {
		_, _, err := txs.MayLoad(st, uint64(i%100+1))
		return err
	})
	// iterate visits n history keys (the scan, the key decoding, the value's).
	sdk.Query(r, "iterate", func(st sdk.State, q req) (resp, error) {
		var err error
		n := 0
		for range history.From(st, sdk.Pair[string, uint64]{A: "a", B: 1}, &err) {
			if n == q.N {
				break
			}
			n++
		}
		return resp{}, err
	})
	// result encodes a history page of n entries as the Router does.
	sdk.Query(r, "result", func(st sdk.State, q req) (historyResp, error) {
		h := historyResp{Account: "a", Transactions: []txResp{}}
		for range q.N {
			h.Transactions = append(h.Transactions, sample)
		}
		return h, nil
	})
	sdk.Register(r)
}

func main() {}

// Package ledger is an example raftkv plugin: a bank ledger whose invariants
// hold on every replica.
//
//   - Money is created only by "deposit", the ledger's single minting
//     operation: the total supply changes by exactly the deposited amount,
//     and by nothing else.
//   - "transfer" moves money between two existing accounts and never
//     overdraws: a transfer larger than the payer's balance fails with
//     CodeInsufficientFunds and changes nothing.
//   - So the sum of all balances always equals the supply, and no balance is
//     negative (balances are unsigned and checked before every debit). The
//     "audit" query recomputes the sum to prove it.
//
// Every command's writes are atomic (the host undoes them all when the
// command fails), so a failed transfer cannot leave a half-moved amount
// behind. Transaction records are stamped with the entry's leader time
// (sdk.Entry.Now), the only clock that is identical on every node.
//
// V1 is version 1.0.0. V2 (2.0.0) adds a per-account transaction count, the
// index of the account's last transaction and a per-account history index,
// and its Migrate builds them from the transactions v1 recorded, so upgrading
// v1 to v2 keeps every account and makes the history of old transactions
// visible at once. The wasip1 commands in examples/ledger and
// examples/ledger/v2 register V1 and V2.
//
// # Protocol
//
// Commands and queries are MsgPack maps with string field names (the HTTP
// API converts a JSON object into one), routed by their "op" field (exact,
// lower case) with sdk.Router. Account names and refs accept str or bin.
// Account names are 1 to 64 bytes of ASCII letters, digits, '.', '_' and
// '-'. Amounts are integers from 1 to 2^64-1 (a negative one is refused, not
// wrapped). Unknown fields are ignored. Results are MsgPack maps; times are
// RFC 3339 strings in UTC.
//
// Commands:
//
//	{"op":"open","account":a}
//	    → {"account":a,"balance":0,"opened":time}
//	{"op":"deposit","account":a,"amount":n[,"ref":r]}
//	    → {"tx":index,"account":a,"balance":b,"supply":s}
//	{"op":"transfer","from":a,"to":b,"amount":n[,"ref":r]}
//	    → {"tx":index,"from":a,"to":b,"amount":n,"from_balance":x,"to_balance":y}
//
// A deposit or transfer is recorded as a transaction whose number ("tx") is
// the index of its log entry. The optional "ref" (1 to 128 bytes) is a client
// reference that makes a retry safe: a second command with a ref already used
// fails with abi.CodeConflict ("duplicate ref ...: already applied as tx N")
// and changes nothing. Use one when a write's outcome is unknown (a timeout,
// a lost leader) and you retry it.
//
// Queries:
//
//	{"op":"balance","account":a}
//	    → {"account":a,"balance":b,"opened":time}  (v2 adds "tx_count","last_tx")
//	{"op":"supply"}
//	    → {"supply":s,"accounts":n}
//	{"op":"accounts"[,"start":a][,"limit":n]}
//	    → {"accounts":[{"account":a,"balance":b},...][,"next":a]}
//	{"op":"audit"}
//	    → {"supply":s,"sum":t,"accounts":n,"counted":c,"ok":bool}
//	{"op":"tx","index":i}
//	    → {"tx":i,"time":time,"kind":"deposit"|"transfer",["from":a,]"to":b,"amount":n[,"ref":r]}
//	{"op":"history","account":a[,"after":i][,"limit":n]}   (v2 only)
//	    → {"account":a,"transactions":[tx,...][,"next":i]}
//
// "accounts" lists accounts in name order from "start"; "history" lists an
// account's transactions oldest first, after transaction "after". "limit"
// defaults to 100 and must be between 1 and 1000; "next" is present when more
// remain and is the value to pass as "start" (or "after") to continue. A
// history entry costs some 33k fuel to read (decoding the transaction,
// formatting its time, encoding the answer; the first query of an instance
// adds under 1M): the default page of 100 uses under a quarter of the
// default query fuel (20M), and a page of more than about 600 answers
// out_of_fuel. Ask for pages of 500 or fewer, or raise the plugin's
// query_fuel. (TestHistoryPageFitsQueryFuel and TestFuelBreakdown measure
// it.)
//
// # Errors
//
// Malformed input, an unknown op, a bad account name, ref, amount or limit,
// and a transfer to the payer itself fail with abi.CodeBadRequest; for a
// command these are refused before the log (sdk.Router.ValidateCommand runs
// each request's Check). An account that does not exist fails with
// abi.CodeNotFound; opening an account twice or reusing a ref with
// abi.CodeConflict. The ledger's own codes are CodeInsufficientFunds (64)
// and CodeSupplyOverflow (65).
//
// # State layout
//
// Values are MsgPack (sdk.Marshal); keys are the SDK's ordered encodings.
//
//	a/<account>                   sdk.Map[string, account]: {"balance","opened","opened_index"[,"tx_count","last_tx"]}
//	m/totals                      sdk.Item: {"supply","accounts"}
//	t/<index, 8 bytes BE>         sdk.Map[uint64, transaction]: the transaction record
//	r/<ref>                       sdk.Map[string, uint64]: the tx index that used the ref
//	h/<len, 2 bytes BE><account><index, 8 bytes BE>
//	                              v2, sdk.Map[sdk.Pair[string, uint64], byte]: the account's history
//	                              index (value: 'd' deposit, 'i' in, 'o' out)
package ledger

// Package queue is an example raftkv plugin written with the SDK's typed
// layer (sdk.Router, sdk.Map, sdk.Sequence): a FIFO job queue, replicated.
//
// Version 1.0.0 (V1):
//
//	command {"op":"push","payload":p}  → {"id":n}           p: a string (or bin), 1..64 KiB
//	command {"op":"pop"}               → {"id","payload","pushed"}; not_found when empty
//	query   {"op":"peek"}              → the next job, as pop, without taking it
//	query   {"op":"len"}               → {"queued":n}
//	query   {"op":"list"[,"after":id][,"limit":n]} → {"items":[job,…][,"next":id]}  (sdk.Map.List)
//
// Version 2.0.0 (V2) delivers at least once: "pop" leases the job for
// "lease_ms" (default 30000) of entry time, "ack" {"id"} finishes it, and a
// job whose lease ran out is handed out again (its "attempts" count grows).
// Its query "len" adds "leased". V2's migration turns v1's jobs into v2's.
// Job ids come from a sequence and are never reused; "pushed" and lease
// times are the entries' leader time (Unix ms), the same on every node.
package queue

import (
	"cmp"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// Job is a queued job, as stored and as the API shows it.
type Job struct {
	ID       uint64 `msgpack:"id"`
	Payload  string `msgpack:"payload"`
	Pushed   int64  `msgpack:"pushed"`             // Unix ms of the push
	Attempts uint32 `msgpack:"attempts,omitempty"` // v2: deliveries so far
	Until    int64  `msgpack:"lease_until,omitempty"`
}

// State layout, shared by both versions except where noted.
var (
	ids    = sdk.NewSequence("seq")
	v1Jobs = sdk.NewMap[uint64, Job]("j/", sdk.Uint64Key) // v1's queue
	queued = sdk.NewMap[uint64, Job]("q/", sdk.Uint64Key) // v2's queue
	leased = sdk.NewMap[uint64, Job]("l/", sdk.Uint64Key) // v2's jobs handed out
)

// MaxPayload bounds a job's payload.
const MaxPayload = 64 << 10

type pushReq struct {
	Payload string `msgpack:"payload"`
}

func (r pushReq) Check() error {
	n := len(r.Payload)
	return sdk.Ensure(n >= 1 && n <= MaxPayload, "payload must be 1 to %d bytes, not %d", MaxPayload, n)
}

type idResp struct {
	ID uint64 `msgpack:"id"`
}

// orEmpty answers the first job of a Map (First, PopFirst), not_found if
// there is none.
func orEmpty(_ uint64, j Job, found bool, err error) (Job, error) {
	if err == nil && !found {
		err = sdk.NotFound("the queue is empty")
	}
	return j, err
}

// newQueue returns a Router with the ops of both versions: push, peek, list.
func newQueue(version, description string, jobs sdk.Map[uint64, Job]) *sdk.Router {
	r := sdk.NewRouter(abi.Info{Name: "queue", Version: version, Description: description})
	sdk.Command(r, "push", func(st sdk.State, e sdk.Entry, req pushReq) (idResp, error) {
		id, err := ids.Next(st)
		if err != nil {
			return idResp{}, err
		}
		return idResp{id}, jobs.Save(st, id, Job{ID: id, Payload: req.Payload, Pushed: e.Now().UnixMilli()})
	})
	sdk.Query(r, "peek", func(st sdk.State, _ struct{}) (Job, error) {
		return orEmpty(jobs.First(st))
	})
	sdk.Query(r, "list", jobs.List)
	return r
}

// V1 is version 1.0.0: push and pop.
var V1 = newQueue("1.0.0", "FIFO job queue", v1Jobs)

func init() {
	sdk.Command(V1, "pop", func(st sdk.State, _ sdk.Entry, _ struct{}) (Job, error) {
		return orEmpty(v1Jobs.PopFirst(st))
	})
	sdk.Query(V1, "len", func(st sdk.State, _ struct{}) (map[string]int, error) {
		n, err := v1Jobs.Count(st)
		return map[string]int{"queued": n}, err
	})
}

// NewV2 returns version 2.0.0: leases, acks and redelivery, and a migration
// from v1 that moves its jobs ("j/") to v2's queue ("q/"), in order.
func NewV2() sdk.Plugin {
	r := newQueue("2.0.0", "FIFO job queue with leases and acks", queued)
	sdk.Command(r, "pop", pop)
	sdk.Command(r, "ack", func(st sdk.State, _ sdk.Entry, req idResp) (idResp, error) {
		ok, err := leased.Remove(st, req.ID)
		if err == nil && !ok {
			err = sdk.NotFound("job %d is not leased", req.ID)
		}
		return req, err
	})
	sdk.Query(r, "len", func(st sdk.State, _ struct{}) (map[string]int, error) {
		q, err := queued.Count(st)
		l, err2 := leased.Count(st)
		return map[string]int{"queued": q, "leased": l}, cmp.Or(err, err2)
	})
	return r.WithMigration(func(st sdk.State, _ abi.Migration) error { return v1Jobs.MoveTo(st, queued) })
}

type popReq struct {
	LeaseMS int64 `msgpack:"lease_ms"`
}

func (r *popReq) Check() error {
	r.LeaseMS = cmp.Or(r.LeaseMS, 30000)
	return sdk.Ensure(r.LeaseMS >= 1 && r.LeaseMS <= 86400000, "lease_ms must be 1 to 86400000")
}

// pop leases the oldest job whose lease ran out, else the first queued one.
func pop(st sdk.State, e sdk.Entry, req popReq) (j Job, err error) {
	now, found := e.Now().UnixMilli(), false
	for _, l := range leased.All(st, &err) {
		if j, found = l, l.Until <= now; found {
			break
		}
	}
	if !found && err == nil {
		_, j, found, err = queued.PopFirst(st)
	}
	if j, err = orEmpty(j.ID, j, found, err); err != nil {
		return Job{}, err
	}
	j.Attempts++
	j.Until = now + req.LeaseMS
	return j, leased.Save(st, j.ID, j)
}

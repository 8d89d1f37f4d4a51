// Package queue is an example raftkv plugin written with the SDK's typed
// layer (sdk.Router, sdk.Map, sdk.Sequence): a FIFO job queue, replicated.
//
// Version 1.0.0 (V1):
//
//	command {"op":"push","payload":p}  → {"id":n}           p: a string (or bin), 1..64 KiB
//	command {"op":"pop"}               → {"id","payload","pushed"}; not_found when empty
//	query   {"op":"peek"}              → the next job, as pop, without taking it
//	query   {"op":"len"}               → {"queued":n}
//	query   {"op":"list"[,"after":id][,"limit":n]} → {"jobs":[{"id","payload","pushed"},…][,"next":id]}
//
// Version 2.0.0 (V2) delivers at least once: "pop" leases the job for
// "lease_ms" (default 30000) of entry time, "ack" {"id"} finishes it, and a
// job whose lease ran out is handed out again (its "attempts" count grows).
// Its query "len" adds "leased". V2's migration turns v1's jobs into v2's.
// Job ids come from a sequence and are never reused; "pushed" and lease
// times are the entries' leader time (Unix ms), the same on every node.
package queue

import (
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

type idResp struct {
	ID uint64 `msgpack:"id"`
}

type listReq struct {
	After uint64 `msgpack:"after"`
	Limit int    `msgpack:"limit"`
}

type listResp struct {
	Jobs []Job  `msgpack:"jobs"`
	Next uint64 `msgpack:"next,omitempty"`
}

func ms(e sdk.Entry) int64 { return e.Time / 1e6 }

func push(jobs sdk.Map[uint64, Job]) func(sdk.State, sdk.Entry, pushReq) (idResp, error) {
	return func(st sdk.State, e sdk.Entry, req pushReq) (idResp, error) {
		if len(req.Payload) == 0 || len(req.Payload) > MaxPayload {
			return idResp{}, sdk.BadRequest("payload must be 1 to %d bytes, not %d", MaxPayload, len(req.Payload))
		}
		id, err := ids.Next(st)
		if err != nil {
			return idResp{}, err
		}
		return idResp{id}, jobs.Save(st, id, Job{ID: id, Payload: req.Payload, Pushed: ms(e)})
	}
}

// first returns the first job of jobs.
func first(st sdk.State, jobs sdk.Map[uint64, Job]) (Job, bool, error) {
	var err error
	for _, j := range jobs.All(st, &err) {
		return j, true, nil
	}
	return Job{}, false, err
}

func list(jobs sdk.Map[uint64, Job]) func(sdk.State, listReq) (listResp, error) {
	return func(st sdk.State, req listReq) (listResp, error) {
		if req.Limit == 0 {
			req.Limit = 100
		}
		if req.Limit < 1 || req.Limit > 1000 {
			return listResp{}, sdk.BadRequest("limit must be 1 to 1000")
		}
		resp := listResp{Jobs: []Job{}}
		var err error
		for _, j := range jobs.From(st, req.After+1, &err) {
			if len(resp.Jobs) == req.Limit {
				resp.Next = resp.Jobs[len(resp.Jobs)-1].ID
				break
			}
			resp.Jobs = append(resp.Jobs, j)
		}
		return resp, err
	}
}

// V1 is version 1.0.0: push and pop.
var V1 = sdk.NewRouter(abi.Info{Name: "queue", Version: "1.0.0", Description: "FIFO job queue"})

func init() {
	jobs := v1Jobs
	sdk.Command(V1, "push", push(jobs))
	sdk.Command(V1, "pop", func(st sdk.State, e sdk.Entry, _ struct{}) (Job, error) {
		j, ok, err := first(st, jobs)
		if err != nil || !ok {
			return j, orEmpty(err)
		}
		_, err = jobs.Remove(st, j.ID)
		return j, err
	})
	sdk.Query(V1, "peek", func(st sdk.State, _ struct{}) (Job, error) {
		j, ok, err := first(st, jobs)
		if err == nil && !ok {
			err = errEmpty
		}
		return j, err
	})
	sdk.Query(V1, "len", func(st sdk.State, _ struct{}) (map[string]int, error) {
		n, err := count(st, jobs)
		return map[string]int{"queued": n}, err
	})
	sdk.Query(V1, "list", list(jobs))
}

var errEmpty = sdk.NotFound("the queue is empty")

func orEmpty(err error) error {
	if err == nil {
		return errEmpty
	}
	return err
}

func count(st sdk.State, m sdk.Map[uint64, Job]) (int, error) {
	var err error
	n := 0
	for range m.All(st, &err) {
		n++
	}
	return n, err
}

package queue

import (
	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/plugins/sdk"
)

// V2 is version 2.0.0: leases, acks and redelivery, and a migration from v1.
type V2 struct{ *sdk.Router }

// NewV2 returns version 2.0.0 with its handlers.
func NewV2() V2 {
	r := sdk.NewRouter(abi.Info{Name: "queue", Version: "2.0.0", Description: "FIFO job queue with leases and acks"})
	sdk.Command(r, "push", push(queued))
	sdk.Command(r, "pop", pop)
	sdk.Command(r, "ack", func(st sdk.State, _ sdk.Entry, req idResp) (idResp, error) {
		ok, err := leased.Remove(st, req.ID)
		if err == nil && !ok {
			err = sdk.NotFound("job %d is not leased", req.ID)
		}
		return req, err
	})
	sdk.Query(r, "peek", func(st sdk.State, _ struct{}) (Job, error) {
		j, ok, err := first(st, queued)
		if err == nil && !ok {
			err = errEmpty
		}
		return j, err
	})
	sdk.Query(r, "len", func(st sdk.State, _ struct{}) (map[string]int, error) {
		q, err := count(st, queued)
		if err != nil {
			return nil, err
		}
		l, err := count(st, leased)
		return map[string]int{"queued": q, "leased": l}, err
	})
	sdk.Query(r, "list", list(queued))
	return V2{r}
}

type popReq struct {
	LeaseMS int64 `msgpack:"lease_ms"`
}

// pop leases the oldest job whose lease ran out, else the first queued one.
func pop(st sdk.State, e sdk.Entry, req popReq) (Job, error) {
	if req.LeaseMS == 0 {
		req.LeaseMS = 30000
	}
	if req.LeaseMS < 1 || req.LeaseMS > 86400000 {
		return Job{}, sdk.BadRequest("lease_ms must be 1 to 86400000")
	}
	now := ms(e)
	var err error
	var j Job
	found := false
	for _, l := range leased.All(st, &err) {
		if found = l.Until <= now; found {
			j = l
			break
		}
	}
	if err != nil {
		return Job{}, err
	}
	if !found {
		if j, found, err = first(st, queued); err != nil || !found {
			return Job{}, orEmpty(err)
		}
		if _, err := queued.Remove(st, j.ID); err != nil {
			return Job{}, err
		}
	}
	j.Attempts++
	j.Until = now + req.LeaseMS
	return j, leased.Save(st, j.ID, j)
}

// Migrate implements sdk.Migrator: v1's jobs ("j/") become v2's queued jobs
// ("q/"), in order, with no attempts yet.
func (V2) Migrate(st sdk.State, m abi.Migration) error {
	var err error
	for id, j := range v1Jobs.All(st, &err) {
		if err := queued.Save(st, id, j); err != nil {
			return err
		}
		if _, err := v1Jobs.Remove(st, id); err != nil {
			return err
		}
	}
	return err
}

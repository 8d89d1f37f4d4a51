package host_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

type regInput struct {
	put        bool
	key, value string
}

type regOutput struct {
	value string
	found bool
}

// registerModel is a map of independent registers, partitioned by key.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return regOutput{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(regOutput), input.(regInput)
		if in.put {
			return true, regOutput{value: in.value, found: true}
		}
		return output.(regOutput) == st, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		if in.put {
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		return fmt.Sprintf("get(%s) -> %q %v", in.key, out.value, out.found)
	},
}

// TestLinearizable records a history of writes and linearizable reads from
// clients on every node while the leader is partitioned away and healed, and
// checks it with porcupine. A write that fails may still have been applied,
// so it stays pending to the end of the history; a failed read is dropped.
func TestLinearizable(t *testing.T) {
	c := cluster.Start(t, cluster.Options{Nodes: 3})
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var mu sync.Mutex
	var history []porcupine.Operation
	var ok, failed int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for client := range 4 {
		n := c.Members[client%3].Node
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("r%d", rng.IntN(10))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				op := porcupine.Operation{ClientId: client, Call: now()}
				if rng.IntN(2) == 0 {
					val := fmt.Sprintf("c%d-%d", client, i)
					op.Input = regInput{put: true, key: key, value: val}
					res, err := n.Apply(ctx, "kv", cmd(t, map[string]any{"op": "SET", "key": key, "value": val}))
					op.Return, op.Output = now(), regOutput{}
					switch {
					case errors.Is(err, host.ErrNotLeader), errors.Is(err, host.ErrNoLeader):
						op.Input = nil // refused before it was proposed
					case err != nil || !res.OK():
						op.Return = math.MaxInt64 // outcome unknown
					}
				} else {
					op.Input = regInput{key: key}
					v, err := get(t, n, key, host.Linearizable)
					op.Return = now()
					switch {
					case err == nil:
						op.Output = regOutput{value: v, found: true}
					case errors.Is(err, &abi.Error{Code: abi.CodeNotFound}):
						op.Output = regOutput{}
					default:
						op.Input = nil // failed read: no information
					}
				}
				cancel()
				mu.Lock()
				if op.Input != nil {
					history = append(history, op)
				}
				bad := op.Return == math.MaxInt64 || op.Input == nil
				if bad {
					failed++
				} else {
					ok++
				}
				mu.Unlock()
				if bad { // back off: every unknown write widens the search
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	l := c.Leader()
	c.Isolate(l)
	time.Sleep(2500 * time.Millisecond)
	c.Heal()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()

	res, info := porcupine.CheckOperationsVerbose(registerModel, history, 60*time.Second)
	t.Logf("%d operations completed, %d failed or unknown, check: %s", ok, failed, res)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		porcupine.VisualizePath(registerModel, info, path)
		t.Fatalf("history check: %s (visualization: %s)", res, path)
	}
	if ok < 50 {
		t.Fatalf("only %d operations completed", ok)
	}
}

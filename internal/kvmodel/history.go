package kvmodel

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// HistoryInput is one operation of a recorded key-value history, for
// HistoryModel: a put of Value to Key, or a get of Key.
type HistoryInput struct {
	Put        bool
	Key, Value string
}

// HistoryOutput is what a get returned (a put's output is ignored): the
// value, and whether the key existed.
type HistoryOutput struct {
	Value string
	Found bool
}

// HistoryModel is a porcupine model of the KV plugin's SET and GET as seen
// by clients: independent registers, one per key, so a history is checked
// key by key. A put whose outcome is unknown is recorded as an operation
// that never returns (porcupine then linearizes it anywhere after its call,
// or never in effect).
var HistoryModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(HistoryInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return HistoryOutput{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(HistoryOutput), input.(HistoryInput)
		if in.Put {
			return true, HistoryOutput{Value: in.Value, Found: true}
		}
		return output.(HistoryOutput) == st, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(HistoryInput)
		if in.Put {
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		}
		out, _ := output.(HistoryOutput)
		if !out.Found {
			return fmt.Sprintf("get(%s) -> not found", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
	},
	DescribeState: func(state any) string {
		st := state.(HistoryOutput)
		if !st.Found {
			return "(absent)"
		}
		return st.Value
	},
}

package kvmodel

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func put(client int, call, ret int64, key, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: HistoryInput{Put: true, Key: key, Value: value}, Output: HistoryOutput{}}
}

func get(client int, call, ret int64, key, value string, found bool) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret,
		Input: HistoryInput{Key: key}, Output: HistoryOutput{Value: value, Found: found}}
}

// TestHistoryModel: the model accepts linearizable histories and refuses a
// stale read, a lost acknowledged write, and a read of a value never
// written; a write whose outcome is unknown may take effect or not.
func TestHistoryModel(t *testing.T) {
	unknown := int64(math.MaxInt64)
	cases := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"sequential", []porcupine.Operation{
			get(0, 0, 1, "a", "", false), put(0, 2, 3, "a", "1"), get(1, 4, 5, "a", "1", true)}, porcupine.Ok},
		{"concurrent read sees either", []porcupine.Operation{
			put(0, 0, 10, "a", "1"), get(1, 1, 2, "a", "", false), get(2, 3, 4, "a", "1", true)}, porcupine.Ok},
		{"stale read after a later read saw the write", []porcupine.Operation{
			put(0, 0, 10, "a", "1"), get(1, 1, 2, "a", "1", true), get(2, 3, 4, "a", "", false)}, porcupine.Illegal},
		{"acknowledged write lost", []porcupine.Operation{
			put(0, 0, 1, "a", "1"), get(1, 2, 3, "a", "", false)}, porcupine.Illegal},
		{"value never written", []porcupine.Operation{
			put(0, 0, 1, "a", "1"), get(1, 2, 3, "a", "2", true)}, porcupine.Illegal},
		{"keys are independent", []porcupine.Operation{
			put(0, 0, 1, "a", "1"), get(1, 2, 3, "b", "", false), get(1, 4, 5, "a", "1", true)}, porcupine.Ok},
		{"unknown write applied late", []porcupine.Operation{
			put(0, 0, unknown, "a", "1"), get(1, 5, 6, "a", "", false), get(1, 7, 8, "a", "1", true)}, porcupine.Ok},
		{"unknown write never applied", []porcupine.Operation{
			put(0, 0, unknown, "a", "1"), get(1, 5, 6, "a", "", false)}, porcupine.Ok},
		{"unknown write cannot be undone", []porcupine.Operation{
			put(0, 0, unknown, "a", "1"), get(1, 5, 6, "a", "1", true), get(1, 7, 8, "a", "", false)}, porcupine.Illegal},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(HistoryModel, c.history); got != (c.want == porcupine.Ok) {
			t.Errorf("%s: linearizable = %v, want %v", c.name, got, c.want == porcupine.Ok)
		}
	}
}

package host

import "testing"

// The consistency names and aliases docs/api.md lists.
func TestParseConsistencyAliases(t *testing.T) {
	for in, want := range map[string]Consistency{
		"": Leader, "leader": Leader, "default": Leader,
		"stale": Stale, "none": Stale, "weak": Stale,
		"linearizable": Linearizable, "strong": Linearizable, "linearized": Linearizable,
	} {
		if got, err := ParseConsistency(in); err != nil || got != want {
			t.Errorf("ParseConsistency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseConsistency("eventual"); err == nil {
		t.Error("an unknown consistency was accepted")
	}
}

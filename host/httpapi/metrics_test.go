package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// scrape returns n's /metrics as series (name and labels, as printed) to value.
func scrape(t *testing.T, n *node) map[string]float64 {
	t.Helper()
	r := do(t, "GET", n.url+"/metrics", nil)
	wantOK(t, r)
	series := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

// metric returns a series' value and fails the test if it is absent.
func metric(t *testing.T, series map[string]float64, name string) float64 {
	t.Helper()
	v, ok := series[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return v
}

// TestResultCodeLabels: raftkv_plugin_commands_total keeps the ABI's named
// codes as labels and counts every plugin-defined code as "other", so that a
// plugin cannot create a time series per code.
func TestResultCodeLabels(t *testing.T) {
	wasm := wasmbuild.Build(t, "./testdata/codes")
	tc := startCluster(t, 1)
	l := tc.leader()
	wantOK(t, do(t, "PUT", l.url+"/v1/plugins/codes", wasm))
	sent := map[int]int{0: 2, 3: 1, 64: 1, 200: 2, 255: 1}
	for code, times := range sent {
		for range times {
			r := do(t, "POST", l.url+"/v1/plugins/codes/commands", strconv.Itoa(code))
			if (code == 0) != (r.status == 200) {
				t.Fatalf("code %d: %s", code, r)
			}
		}
	}
	s := scrape(t, l)
	series := func(code string) string {
		return fmt.Sprintf(`raftkv_plugin_commands_total{code="%s",plugin="codes"}`, code)
	}
	for code, want := range map[string]float64{"ok": 2, "conflict": 1, "other": 4} {
		if got := metric(t, s, series(code)); got != want {
			t.Errorf("%s = %v, want %v", series(code), got, want)
		}
	}
	for name := range s {
		if strings.HasPrefix(name, "raftkv_plugin_commands_total{") && strings.Contains(name, `code="plugin_`) {
			t.Errorf("per-code series %s", name)
		}
	}
}

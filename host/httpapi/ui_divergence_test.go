package httpapi

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
	"github.com/raftkv/raftkv/internal/wasmbuild"
)

// TestUIDivergence loads the status page of a live 3-node cluster in the
// real browser and makes the cluster's state diverge, as in
// TestDigestCheckDetectsDivergence: the hostile test plugin's "count K"
// keeps a counter in guest memory, and a follower restarted from its own
// snapshot counts from 0 while the others go on. While the digest checks
// agree, the page shows no divergence (no alarm, every member "ok"); once
// the leader's periodic check finds the difference, it shows, for each of
// the two nodes, an alarm naming the plugin and the other node, and their
// health as "diverged". The page is served by the third node, which does
// not diverge: it shows what the others report. It saves screenshots.
func TestUIDivergence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	browser := chromium(t)
	hostile := wasmbuild.Build(t, "../plugin/testdata/hostile")
	c := cluster.Start(t, cluster.Options{Nodes: 3, Configure: func(cfg *host.Config) {
		tolerant(cfg)
		cfg.DigestCheckInterval = 300 * time.Millisecond
	}})
	cluster.Deploy(t, c.Leader().Node, "hostile", hostile)
	for i := 1; i <= 3; i++ {
		if r := c.Apply("hostile", []byte("count c")); !r.OK() || string(r.Data) != strconv.Itoa(i) {
			t.Fatalf("count %d: %v %q", i, r.Err(), r.Data)
		}
	}
	fs := c.Followers()
	restarted, viewer := fs[0], fs[1]
	cfg := DefaultConfig()
	cfg.RequestTimeout = 30 * time.Second
	srv := httptest.NewServer(New(viewer.Node, cfg).Handler())
	t.Cleanup(srv.Close)

	ctx := newBrowser(t, browser, 4*time.Minute)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/ui"),
		chromedp.WaitVisible(`#members tbody tr[data-node]`),
	); err != nil {
		t.Fatal(err)
	}
	type view struct {
		Health map[string]string // node -> its row's health cell
		Alarms []string
		Loaded int
	}
	read := func() view {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[view](`({
			Health: Object.fromEntries([...document.querySelectorAll("#members tbody tr")].map(tr =>
				[tr.dataset.node, tr.querySelector(".health").textContent])),
			Alarms: [...document.querySelectorAll("#alarms li.bad")].map(li => li.textContent),
			Loaded: Number(document.body.dataset.loaded || "0"),
		})`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// diverged returns what v says of divergence: "" when nothing.
	diverged := func(v view) string {
		var out []string
		for _, a := range v.Alarms {
			if strings.Contains(a, "diverge") {
				out = append(out, a)
			}
		}
		for id, h := range v.Health {
			if strings.Contains(h, "diverge") {
				out = append(out, id+" health "+h)
			}
		}
		return strings.Join(out, "; ")
	}

	// Healthy: a digest check has compared every member and found them
	// equal; a refresh that began after it shows no divergence (nor any
	// other alarm, once the page has caught up), and never shows one.
	c.WaitDigestCheck(c.Leader().Node.AppliedIndex(), restarted.ID, viewer.ID)
	for _, m := range c.Members {
		if d := m.Node.Divergences(); len(d) != 0 {
			t.Fatalf("%s: divergence before any restart: %+v", m.ID, d)
		}
	}
	since := read().Loaded + 1 // the refresh under way may predate the check
	var v view
	deadline := time.Now().Add(90 * time.Second)
	for {
		v = read()
		if d := diverged(v); d != "" {
			t.Fatalf("the page of a cluster that agrees shows a divergence: %s\n%+v", d, v)
		}
		ok := v.Loaded > since && len(v.Health) == 3 && len(v.Alarms) == 0
		for _, h := range v.Health {
			ok = ok && h == "ok"
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page of a healthy cluster does not show it healthy: %+v", v)
		}
		time.Sleep(250 * time.Millisecond)
	}
	screenshot(t, ctx, "ui-no-divergence.png")

	// A follower restarts from its own snapshot: its instance of hostile
	// counts from 0, the others' from 3.
	if err := restarted.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Restart(restarted)
	c.WaitConverged(3)
	c.Apply("hostile", []byte("count c"))

	// The page shows, for the restarted node and for the node that found
	// it different (the leader), an alarm naming hostile and the other,
	// and both rows "diverged".
	alarm := func(v view, node, peer string) bool {
		for _, a := range v.Alarms {
			if strings.HasPrefix(a, node+": plugin hostile diverges from "+peer+" at index ") {
				return true
			}
		}
		return false
	}
	var peer string
	deadline = time.Now().Add(2 * time.Minute)
	for {
		v = read()
		peer = ""
		for _, m := range c.Members {
			if m != restarted && alarm(v, restarted.ID, m.ID) {
				peer = m.ID
			}
		}
		if peer != "" && alarm(v, peer, restarted.ID) &&
			v.Health[restarted.ID] == "diverged" && v.Health[peer] == "diverged" {
			break
		}
		if time.Now().After(deadline) {
			var ds []string
			for _, m := range c.Members {
				ds = append(ds, m.ID+": "+m.Node.Stats().DivergenceSummary)
			}
			t.Fatalf("the page does not show %s's state diverging from another node's (hostile): %+v\nnodes say: %s",
				restarted.ID, v, strings.Join(ds, "; "))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Every divergence shown is between the restarted node and another.
	for _, a := range v.Alarms {
		if strings.Contains(a, " diverges from ") && !strings.HasPrefix(a, restarted.ID+": ") && !strings.Contains(a, " diverges from "+restarted.ID+" ") {
			t.Errorf("alarm not between %s and another node: %s", restarted.ID, a)
		}
	}
	t.Logf("page: %+v", v)
	screenshot(t, ctx, "ui-divergence.png")
}

package httpapi

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/raftkv/raftkv/host"
	"github.com/raftkv/raftkv/internal/cluster"
)

// chromium finds the browser scripts/deps.sh installs (CHROMIUM overrides).
func chromium(t *testing.T) string {
	name := os.Getenv("CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("no %s to test the /ui page with: run scripts/deps.sh (make deps) to install Debian's chromium", name)
	}
	return path
}

// artifactDir is where the screenshot goes: $RAFTKV_ARTIFACTS (make test
// sets bin/artifacts), else the test's artifact directory (kept with go
// test -artifacts).
func artifactDir(t *testing.T) string {
	if d := os.Getenv("RAFTKV_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

// TestUI loads the status page of a live 3-node cluster in a real headless
// browser (chromium, driven over the DevTools protocol), through a node that
// requires a token, and checks that it shows the cluster's actual values:
// the leader, every member with its role, health and applied index, the kv
// plugin's hash and digests, and a write rate while writes go on. It saves a
// screenshot.
func TestUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	browser := chromium(t)
	tc := startCluster(t, 3)
	// The page is served by a node whose API requires a token.
	m := tc.c.Members[1]
	cfg := DefaultConfig()
	cfg.Token, cfg.RequestTimeout = "s3cret", 30*time.Second
	api := New(m.Node, cfg)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	// The page, like any client, gets nothing without the token.
	wantErr(t, do(t, "GET", srv.URL+"/v1/status/cluster", nil), 401, "unauthorized")
	page := do(t, "GET", srv.URL+"/ui", nil)
	if page.status != 200 || !strings.Contains(string(page.body), "<script src=\"/ui/app.js\">") || strings.Contains(string(page.body), "http") && strings.Contains(string(page.body), "://") {
		t.Fatalf("/ui: %d, external references or no script:\n%s", page.status, page.body)
	}

	// Writes through that node while the page watches.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			do(t, "PUT", kvURL(srv.URL, "ui/"+strconv.Itoa(i%50)), "v", "Authorization", "Bearer s3cret")
			do(t, "GET", kvURL(srv.URL, "ui/"+strconv.Itoa(i%50))+"?consistency=stale", nil, "Authorization", "Bearer s3cret")
			time.Sleep(20 * time.Millisecond)
		}
	})
	defer func() { close(stop); wg.Wait() }()

	ctx := newBrowser(t, browser, 3*time.Minute)

	// Without the token the page asks for it; with it, it loads.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/ui"),
		chromedp.WaitVisible("#login"),
		chromedp.SendKeys("#token", "s3cret"),
		chromedp.Click("#token-form button"), // a user click: the page's submit handler runs
		chromedp.WaitVisible(`#members tbody tr[data-node]`),
	); err != nil {
		t.Fatal(err)
	}
	loginHidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("login").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if !loginHidden {
		t.Fatal("the token form is still shown after a good token")
	}

	type row struct {
		Node, Role, Health, Applied, Version string
	}
	type view struct {
		Leader, Term string
		Rows         []row
		Plugin       []struct{ Node, Hash, Digest string }
		Alarms       []string
		WriteRate    string
		ReadRate     string
		Loaded       string
	}
	read := func() view {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[view](`({
			Leader: document.getElementById("leader").textContent,
			Term: document.getElementById("term").textContent,
			Rows: [...document.querySelectorAll("#members tbody tr")].map(tr => ({
				Node: tr.dataset.node, Role: tr.querySelector(".role").textContent,
				Health: tr.querySelector(".health").textContent, Applied: tr.querySelector(".applied").textContent,
				Version: tr.querySelector(".version").textContent})),
			Plugin: [...document.querySelectorAll('#plugins tr[data-plugin="kv"] td[data-node]')].map(td => ({
				Node: td.dataset.node, Hash: td.querySelector(".hash").textContent, Digest: td.querySelector(".digest").textContent})),
			Alarms: [...document.querySelectorAll("#alarms li.bad")].map(li => li.textContent),
			WriteRate: document.getElementById("write-rate").textContent,
			ReadRate: document.getElementById("read-rate").textContent,
			Loaded: document.body.dataset.loaded || "0",
		})`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Poll the page until it shows what the cluster says (it refreshes
	// every 2 s; digests every third refresh).
	leader := tc.c.Leader()
	hash := m.Node.Plugins()[0].Hash
	var v view
	deadline := time.Now().Add(90 * time.Second)
	for {
		v = read()
		problem := check(v.Leader, leader.ID, v.Term, leader.Node.Stats().Term, len(v.Rows), v.Alarms, v.WriteRate)
		for _, r := range v.Rows {
			st := tc.c.Member(r.Node).Node.Stats()
			applied, _ := strconv.ParseUint(r.Applied, 10, 64)
			wantRole := strings.ToLower(st.State)
			switch {
			case r.Health != "ok":
				problem = r.Node + " health " + r.Health
			case r.Role != wantRole:
				problem = r.Node + " role " + r.Role + ", want " + wantRole
			case applied == 0 || applied > st.AppliedIndex:
				problem = r.Node + " applied " + r.Applied + ", node at " + strconv.FormatUint(st.AppliedIndex, 10)
			case r.Version == "" || r.Version == "–":
				problem = r.Node + " has no version"
			}
		}
		if len(v.Plugin) != 3 {
			problem = "kv plugin cells: " + strconv.Itoa(len(v.Plugin))
		}
		for _, p := range v.Plugin {
			if p.Hash != hash[:12] {
				problem = p.Node + " shows hash " + p.Hash + ", want " + hash[:12]
			} else if !digestShown(p.Digest, tc.c.Member(p.Node).Node) {
				problem = p.Node + " shows digest " + p.Digest
			}
		}
		if problem == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page does not show the cluster: %s\n%+v", problem, v)
		}
		time.Sleep(250 * time.Millisecond)
	}

	if rate, _ := strconv.ParseFloat(read().ReadRate, 64); rate <= 0 {
		t.Fatalf("no read rate while reads go on")
	}
	screenshot(t, ctx, "ui.png")
	t.Logf("page: %+v", v)

	// A member goes down: the page says so, as an alarm and in its row.
	var down *cluster.Member
	for _, f := range tc.c.Followers() {
		if f != m {
			down = f
		}
	}
	tc.c.Stop(down)
	deadline = time.Now().Add(60 * time.Second)
	for {
		v = read()
		alarmed := false
		for _, a := range v.Alarms {
			alarmed = alarmed || strings.HasPrefix(a, down.ID+" is unreachable")
		}
		health := ""
		for _, r := range v.Rows {
			if r.Node == down.ID {
				health = r.Health
			}
		}
		if alarmed && health == "unreachable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page does not show %s down: %+v", down.ID, v)
		}
		time.Sleep(250 * time.Millisecond)
	}
	screenshot(t, ctx, "ui-member-down.png")
}

// newBrowser starts the headless browser (closed when the test ends) and
// returns its context, which expires after timeout.
func newBrowser(t *testing.T, browser string, timeout time.Duration) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return ctx
}

// screenshot saves a PNG of the whole page in artifactDir.
func screenshot(t *testing.T, ctx context.Context, name string) {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	out := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of /ui (%d bytes): %s", len(png), out)
}

// check compares the page's summary with the cluster; "" when it agrees.
func check(leader, want, term string, wantTerm uint64, rows int, alarms []string, writeRate string) string {
	rate, _ := strconv.ParseFloat(writeRate, 64)
	switch {
	case leader != want:
		return "leader " + leader + ", want " + want
	case term != strconv.FormatUint(wantTerm, 10):
		return "term " + term
	case rows != 3:
		return strconv.Itoa(rows) + " member rows"
	case len(alarms) > 0:
		return "alarms: " + strings.Join(alarms, "; ")
	case rate <= 0:
		return "write rate " + writeRate
	}
	return ""
}

// digestShown reports whether a digest cell ("1a2b3c4d5e6f @120") shows the
// node's state digest at that applied index, when the node is still there
// (a later write moves it on: then the cell must be an older index).
func digestShown(cell string, n *host.Node) bool {
	d, at, ok := strings.Cut(cell, " @")
	if !ok || len(d) != 12 {
		return false
	}
	idx, err := strconv.ParseUint(at, 10, 64)
	if err != nil {
		return false
	}
	cur, err := n.StateDigest("kv")
	if err != nil {
		return false
	}
	if cur.AppliedIndex == idx {
		return cur.Digest[:12] == d
	}
	return idx < cur.AppliedIndex
}

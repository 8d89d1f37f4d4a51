// The raftkv status page: it polls this node's GET /v1/status (its own
// request counters, for the rates) and GET /v1/status/cluster (every
// member's status, gathered by this node), and renders them. No external
// assets: it works offline. With a token, it asks for it once and keeps it
// in this tab's sessionStorage.
"use strict";

const REFRESH_MS = 2000;
const DIGEST_EVERY = 3; // digests cost a pass over each node's state
let token = sessionStorage.getItem("raftkv-token") || "";
let tick = 0;
let lastCounters = null; // {t, writes, reads}
const history = [];      // [{w, r}] per refresh
let digests = {};        // node -> plugin -> {digest, applied_index}

async function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) {
    const err = new Error("unauthorized");
    err.unauthorized = true;
    throw err;
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    throw new Error((body && body.error && body.error.message) || resp.statusText);
  }
  return body;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function short(h) { return h ? h.slice(0, 12) : "–"; }

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function health(n) {
  if (n.error) return ["unreachable", "bad"];
  if (n.failure) return ["stopped", "bad"];
  if (n.divergence && n.divergence.length) return ["diverged", "bad"];
  if (!n.leader) return ["no leader", "bad"];
  if (!n.ready) return ["catching up", "warn"];
  return ["ok", "ok"];
}

function render(self, nodes) {
  const live = nodes.filter(n => !n.error);
  const leaderNode = live.find(n => n.state === "Leader");
  const commit = leaderNode ? leaderNode.commit_index : Math.max(0, ...live.map(n => n.commit_index));
  const term = Math.max(0, ...live.map(n => n.term));
  document.getElementById("summary").replaceChildren(
    el("span", {}, "node ", el("b", { id: "self" }, self.node_id)),
    el("span", {}, "leader ", el("b", { id: "leader" }, leaderNode ? leaderNode.node_id : (self.leader || "none"))),
    el("span", {}, "term ", el("b", { id: "term" }, term)),
    el("span", {}, "members ", el("b", { id: "count" }, nodes.length)),
    el("span", {}, "version ", el("b", {}, self.version)));

  // Members.
  const alarms = [];
  const tbody = document.querySelector("#members tbody");
  tbody.replaceChildren(...nodes.map(n => {
    const [h, cls] = health(n);
    const lag = n.error ? "–" : Math.max(0, commit - n.applied_index);
    const api = n.api_address ? el("a", { href: n.api_address + "/ui" }, n.api_address) : "–";
    const row = el("tr", { "data-node": n.node_id, class: n.state === "Leader" ? "leader" : "" },
      el("td", {}, n.node_id), el("td", {}, api),
      el("td", { class: "role" }, n.error ? "–" : n.state.toLowerCase()),
      el("td", { class: "health " + cls }, h + (n.failure ? ": " + n.failure : "")),
      el("td", { class: "num term" }, n.error ? "–" : n.term),
      el("td", { class: "num commit" }, n.error ? "–" : n.commit_index),
      el("td", { class: "num applied" }, n.error ? "–" : n.applied_index),
      el("td", { class: "num lag" }, lag),
      el("td", { class: "num" }, n.error ? "–" : n.keys),
      el("td", { class: "num" }, n.error ? "–" : bytes(n.disk_bytes)),
      el("td", { class: "version" }, n.version || "–"));
    if (n.error) alarms.push(n.node_id + " is unreachable: " + n.error);
    if (n.failure) alarms.push(n.node_id + " stopped applying the log (fail-stop): " + n.failure);
    for (const d of n.divergence || []) alarms.push(n.node_id + ": plugin " + d.plugin + " diverges from " + d.peer + " at index " + d.index + " (digest check; see docs/operations.md)");
    if (!n.error && !n.leader) alarms.push(n.node_id + " knows no leader");
    return row;
  }));
  if (!leaderNode) alarms.push("no member says it leads");
  const versions = new Set(live.map(n => n.version));
  if (versions.size > 1) alarms.push("members run different versions: " + [...versions].join(", "));

  // Plugins: one row per plugin, one column per node.
  for (const n of live) {
    for (const p of n.plugins || []) {
      if (p.digest) {
        digests[n.node_id] = digests[n.node_id] || {};
        digests[n.node_id][p.name] = { digest: p.digest, applied_index: p.applied_index };
      }
    }
  }
  const names = [...new Set(live.flatMap(n => (n.plugins || []).map(p => p.name)))].sort();
  document.querySelector("#plugins thead").replaceChildren(
    el("tr", {}, el("th", {}, "plugin"), ...nodes.map(n => el("th", {}, n.node_id))));
  document.querySelector("#plugins tbody").replaceChildren(...names.map(name => {
    const cells = nodes.map(n => (n.plugins || []).find(p => p.name === name));
    const hashes = new Set(cells.filter(Boolean).map(p => p.hash));
    const missing = live.some(n => !(n.plugins || []).find(p => p.name === name));
    if (hashes.size > 1) alarms.push("plugin " + name + " runs different modules on different nodes");
    if (missing) alarms.push("plugin " + name + " is not active on every node");
    // Digests are comparable at the same applied index only.
    const byIndex = {};
    for (const n of live) {
      const d = (digests[n.node_id] || {})[name];
      if (d) (byIndex[d.applied_index] = byIndex[d.applied_index] || new Set()).add(d.digest);
    }
    const badIndex = Object.entries(byIndex).filter(([, s]) => s.size > 1).map(([i]) => Number(i));
    if (badIndex.length) alarms.push("plugin " + name + ": state digests differ at applied index " + badIndex.join(", "));
    return el("tr", { "data-plugin": name }, el("td", {}, name), ...nodes.map((n, i) => {
      const p = cells[i];
      if (n.error) return el("td", { class: "muted" }, "–");
      if (!p) return el("td", { class: "mismatch bad" }, "absent");
      const d = (digests[n.node_id] || {})[name];
      const mismatch = hashes.size > 1 || (d && badIndex.includes(d.applied_index));
      return el("td", { class: mismatch ? "mismatch" : "", "data-node": n.node_id },
        (p.version || "–") + " ", el("code", { class: "hash", title: p.hash }, short(p.hash)), el("br"),
        el("code", { class: "digest", title: d ? d.digest : "" }, d ? short(d.digest) + " @" + d.applied_index : "digest pending"));
    }));
  }));

  const ul = document.getElementById("alarms");
  ul.replaceChildren(...(alarms.length ? alarms.map(a => el("li", { class: "bad" }, a)) : [el("li", { class: "muted" }, "none")]));
}

function rates(self) {
  const now = performance.now();
  if (lastCounters) {
    const dt = (now - lastCounters.t) / 1000;
    const w = Math.max(0, self.writes - lastCounters.writes) / dt;
    const r = Math.max(0, self.reads - lastCounters.reads) / dt;
    document.getElementById("write-rate").textContent = w.toFixed(1);
    document.getElementById("read-rate").textContent = r.toFixed(1);
    history.push({ w, r });
    if (history.length > 60) history.shift();
    chart();
  }
  lastCounters = { t: now, writes: self.writes, reads: self.reads };
}

function chart() {
  const c = document.getElementById("chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const top = Math.max(1, ...history.map(h => Math.max(h.w, h.r)));
  const step = c.width / 60;
  for (const [key, color] of [["w", "#b3261e"], ["r", "#1e5aa8"]]) {
    g.strokeStyle = color;
    g.beginPath();
    history.forEach((h, i) => {
      const x = i * step, y = c.height - 4 - (h[key] / top) * (c.height - 8);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }
}

async function refresh() {
  try {
    const withDigests = tick % DIGEST_EVERY === 0;
    const [self, cluster] = await Promise.all([
      api("/v1/status"),
      api("/v1/status/cluster" + (withDigests ? "?digests=true" : "")),
    ]);
    tick++;
    document.getElementById("login").hidden = true;
    render(self, cluster.nodes);
    rates(self);
    document.getElementById("footer").textContent = "updated " + new Date().toLocaleTimeString() + " from " + self.node_id;
    document.body.dataset.loaded = String(tick);
  } catch (err) {
    if (err.unauthorized) {
      document.getElementById("login").hidden = false;
      document.getElementById("login-error").textContent = token ? "That token was refused." : "";
      document.getElementById("summary").textContent = "token required";
    } else {
      document.getElementById("footer").textContent = "update failed: " + err.message;
    }
  }
}

document.getElementById("token-form").addEventListener("submit", e => {
  e.preventDefault();
  token = document.getElementById("token").value;
  sessionStorage.setItem("raftkv-token", token);
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);

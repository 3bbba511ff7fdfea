package admin

import (
	"html"
	"io"
	"strings"
)

// writePage writes the dashboard page: inline style and script only, the
// first view embedded (so the page shows the cluster before its first
// poll), then a poll of dashboard.json (relative, so the page also works
// behind a path prefix) every second.
func writePage(w io.Writer, title string, initial []byte) {
	var b strings.Builder
	b.WriteString(pageHead)
	b.WriteString("<title>")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</title>\n</head><body>\n<h1 id=\"title\">")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</h1>\n")
	b.WriteString(pageBody)
	b.WriteString(`<script id="initial" type="application/json">`)
	b.Write(initial) // json.Marshal escaped <, > and &
	b.WriteString("</script>\n<script>\n")
	b.WriteString(pageScript)
	b.WriteString("</script>\n</body></html>\n")
	io.WriteString(w, b.String())
}

const pageHead = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;font-size:14px;margin:1em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .4em}
#summary{margin:.4em 0 .8em}
.pill{display:inline-block;padding:2px 8px;border-radius:10px;margin-right:.5em;font-weight:600}
.ok{background:#c8f0c8}.bad{background:#f8c0c0}.warn{background:#fde7a7}.off{background:#ddd;color:#555}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #bbb;padding:4px 7px;vertical-align:top;text-align:left}
th{background:#e8e8e8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.unreachable td{color:#888;background:#f3e3e3}
.svc{display:block;white-space:nowrap}
.small{font-size:.85em;color:#555}
#stale{color:#a00;font-weight:600}
</style>
`

const pageBody = `<div id="summary"></div>
<table id="nodes"><thead><tr>
<th>node</th><th>role</th><th>health</th><th>addresses</th><th>VIP</th><th>services</th>
<th>req/s</th><th>backends</th><th>mirror lag</th><th>image</th><th>uptime</th>
</tr></thead><tbody></tbody></table>
<p class="small">Updated <span id="updated">-</span> <span id="stale"></span></p>
`

const pageScript = `"use strict";
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function pill(text, cls) { return el("span", text, "pill " + cls); }
function dur(s) {
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
  return Math.floor(s / 86400) + " d";
}
function render(v) {
  document.getElementById("title").textContent = v.title;
  const sum = document.getElementById("summary");
  sum.replaceChildren();
  for (const vip of v.vips || []) {
    const h = vip.holders || [];
    let cls = "ok", text = "VIP " + vip.address + " on " + h.join(", ");
    if (h.length === 0) { cls = "bad"; text = "VIP " + vip.address + " held by nobody"; }
    if (h.length > 1) { cls = "bad"; text = "VIP " + vip.address + " on " + h.join(" and ") + " (split brain)"; }
    const p = pill(text, cls);
    p.id = "vip-" + vip.address;
    p.dataset.holders = h.join(",");
    sum.appendChild(p);
  }
  const n = (v.nodes || []).length;
  const hp = pill(v.healthy + "/" + n + " nodes healthy", v.healthy === n ? "ok" : "warn");
  hp.id = "healthy";
  sum.appendChild(hp);

  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  for (const node of v.nodes || []) {
    const tr = el("tr");
    tr.id = "node-" + node.name;
    tr.dataset.node = node.name;
    tr.dataset.health = node.reachable ? (node.healthy ? "healthy" : "degraded") : "unreachable";
    tr.dataset.vip = (node.holds_vip || []).join(",");
    if (!node.reachable) tr.className = "unreachable";
    tr.appendChild(el("td", node.name));
    tr.appendChild(el("td", node.role || "?"));
    const h = el("td");
    if (!node.reachable) {
      h.appendChild(pill("unreachable", "bad"));
      h.appendChild(el("div", node.error || "", "small"));
    } else if (node.healthy) {
      h.appendChild(pill("healthy", "ok"));
    } else {
      h.appendChild(pill("degraded", "warn"));
      for (const p of node.problems || []) h.appendChild(el("div", p, "small"));
    }
    tr.appendChild(h);
    const ad = el("td");
    for (const a of node.addresses || []) ad.appendChild(el("div", a.interface + " " + a.address, "svc"));
    tr.appendChild(ad);
    const vc = el("td");
    if ((node.holds_vip || []).length) vc.appendChild(pill("holds " + node.holds_vip.join(", "), "ok"));
    tr.appendChild(vc);
    const sv = el("td");
    for (const s of node.services || []) {
      const d = el("span", s.name + ": " + s.state + (s.health ? " (" + s.health + ")" : "") + (s.restarts ? ", " + s.restarts + " restarts" : ""), "svc");
      d.style.color = s.healthy ? "#060" : "#a00";
      sv.appendChild(d);
    }
    tr.appendChild(sv);
    tr.appendChild(el("td", node.request_rate != null ? node.request_rate.toFixed(1) : (node.requests != null ? "…" : "-"), "num"));
    const bc = el("td");
    for (const b of node.backends || []) {
      const d = el("span", b.name + " " + (b.usable ? "up" : (b.up ? "drain" : "DOWN")), "svc");
      d.style.color = b.usable ? "#060" : "#a00";
      bc.appendChild(d);
    }
    tr.appendChild(bc);
    tr.appendChild(el("td", node.mirror_lag_seconds != null ? node.mirror_lag_seconds.toFixed(2) + " s" : "-", "num"));
    const im = el("td");
    im.appendChild(el("div", (node.version || "-") + (node.slot ? " (slot " + node.slot + ")" : "")));
    for (const sl of node.slots || []) {
      let what = "slot " + sl.slot + ": " + (sl.version || (sl.complete ? "?" : "empty"));
      if (sl.running) what += " (running)";
      else if (sl.config) what += " (boots next)";
      im.appendChild(el("div", what, "small"));
    }
    tr.appendChild(im);
    tr.appendChild(el("td", node.reachable ? dur(node.uptime_seconds) : "-", "num"));
    body.appendChild(tr);
  }
  document.getElementById("updated").textContent = new Date(v.time).toLocaleTimeString();
}
let failedSince = null;
async function poll() {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 3000);
  try {
    const r = await fetch("dashboard.json", {cache: "no-store", signal: ctl.signal});
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    render(await r.json());
    failedSince = null;
    document.getElementById("stale").textContent = "";
  } catch (e) {
    if (failedSince === null) failedSince = new Date();
    document.getElementById("stale").textContent = "(no answer since " + failedSince.toLocaleTimeString() + ": " + e.message + ")";
  } finally {
    clearTimeout(t);
    setTimeout(poll, 1000);
  }
}
render(JSON.parse(document.getElementById("initial").textContent));
setTimeout(poll, 1000);
`

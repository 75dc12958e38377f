// Skein console: polls /api/snapshot every two seconds and draws the page
// named by the location hash. Plain DOM, no framework; every value is put in
// with textContent (never as HTML), so nothing a cluster holds can run here.
"use strict";

const POLL_MS = 2000;
let clusters = [];
let current = null;   // cluster id
let last = null;      // the last snapshot
let timer = null;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(headers, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}

const td = (v, cls) => el("td", cls ? { class: cls } : {}, v);
const num = (v) => td(v === null || v === undefined ? "-" : v.toLocaleString("en"), "num");
const ids = (v) => (v && v.length ? v.join(", ") : "-");

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function spark(points, label) {
  const w = 160, h = 32;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  if (points.length > 1) {
    const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
    const max = Math.max(1, ...points.map((p) => p[1]));
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.map((p) =>
      `${((p[0] - t0) / Math.max(1, t1 - t0)) * (w - 2) + 1},${h - 1 - (p[1] / max) * (h - 2)}`).join(" "));
    svg.append(line);
  }
  return svg;
}

const pages = {
  overview(s) {
    const under = s.topics.reduce((a, t) => a + t.under_replicated, 0);
    const offline = s.topics.reduce((a, t) => a + t.offline, 0);
    const fenced = s.brokers.filter((b) => b.fenced).length;
    const lag = s.groups.reduce((a, g) => a + g.total_lag, 0);
    const card = (label, value, cls) => el("div", { class: "card" }, el("b", cls ? { class: cls } : {}, value), label);
    return [
      el("h2", {}, "Overview"),
      el("p", {}, `Cluster id ${s.cluster_id}, active controller ${s.controller}.`),
      el("div", { class: "cards" },
        card("brokers", s.brokers.length),
        card("fenced brokers", fenced, fenced ? "bad" : "ok"),
        card("topics", s.topics.filter((t) => !t.internal).length),
        card("under-replicated partitions", under, under ? "warn" : "ok"),
        card("offline partitions", offline, offline ? "bad" : "ok"),
        card("consumer lag", lag),
        card("moves in progress", s.reassignments.length),
        card("open transactions", s.transactions.filter((t) => t.state === "Ongoing").length)),
    ];
  },

  brokers(s) {
    return [el("h2", {}, "Brokers"), table(
      ["Broker", "Host", "Rack", "State", "Leads", "Replicas", "Under-replicated", "Offline", "Size"],
      s.brokers.map((b) => el("tr", {},
        td(b.id), td(`${b.host}:${b.port}`), td(b.rack || "-"),
        td(b.fenced ? "fenced" : (b.controller ? "live, controller" : "live"), b.fenced ? "bad" : "ok"),
        num(b.partitions_led), num(b.replicas),
        td(b.under_replicated, b.under_replicated ? "num warn" : "num"),
        td(b.offline, b.offline ? "num bad" : "num"), td(bytes(b.bytes), "num"))))];
  },

  topics(s) {
    return [el("h2", {}, "Topics"), table(
      ["Topic", "Partitions", "Replication factor", "Under-replicated", "Offline", "Size", "Configs"],
      s.topics.map((t) => el("tr", {},
        td(t.internal ? `${t.name} (internal)` : t.name), num(t.partitions), num(t.replication_factor),
        td(t.under_replicated, t.under_replicated ? "num warn" : "num"),
        td(t.offline, t.offline ? "num bad" : "num"), td(bytes(t.bytes), "num"),
        td(Object.entries(t.configs).map(([k, v]) => `${k}=${v}`).join(", ") || "-"))))];
  },

  placement(s) {
    const brokers = [...new Set([...s.brokers.map((b) => b.id),
      ...s.placement.flatMap((t) => t.partitions.flatMap((p) => [...p.replicas, ...p.target]))])].sort((a, b) => a - b);
    const out = [el("h2", {}, "Placement"),
      el("p", { class: "legend" },
        el("span", {}, "L: leader"), el("span", {}, "F: follower in sync"), el("span", {}, "O: out of sync"),
        el("span", {}, "+: being added"), el("span", {}, "-: being removed"),
        el("span", {}, "dashed: differs from the (i+j) mod n target"))];
    const folded = [];
    for (const t of s.placement) {
      const rows = t.partitions.map((p) => {
        const cells = brokers.map((b) => {
          const has = p.replicas.includes(b), target = p.target.includes(b);
          let code = "", cls = "";
          if (p.adding.includes(b)) { code = "+"; cls = "A"; }
          else if (p.removing.includes(b)) { code = "-"; cls = "R"; }
          else if (has && p.leader === b) { code = "L"; cls = "L"; }
          else if (has && p.isr.includes(b)) { code = "F"; cls = "F"; }
          else if (has) { code = "O"; cls = "O"; }
          if (has !== target) cls += " off";
          const what = `partition ${p.partition} on broker ${b}: ${{ L: "leader", F: "in-sync follower", O: "out-of-sync follower", "+": "being added", "-": "being removed" }[code] || "no replica"}${target ? ", placement target" : ""}`;
          return el("td", { class: cls.trim(), title: what, "aria-label": what }, code);
        });
        return el("tr", {}, el("th", { scope: "row" }, `${t.topic}-${p.partition}`), cells,
          td(ids(p.replicas)), td(ids(p.target)), td(ids(p.isr)));
      });
      // Internal topics (offsets, transactions) start folded: the users' topics come first.
      const internal = (s.topics.find((x) => x.name === t.topic) || {}).internal;
      const section = el("details", internal ? {} : { open: "" },
        el("summary", {}, internal ? `${t.topic} (internal, ${t.partitions.length} partitions)` : t.topic),
        table(["Partition", ...brokers.map((b) => `Broker ${b}`), "Replicas", "Target", "ISR"], rows,
          { class: "map", "data-topic": t.topic }));
      (internal ? folded : out).push(section);
    }
    return [...out, ...folded];
  },

  groups(s, history) {
    const out = [el("h2", {}, "Consumer groups")];
    if (!s.groups.length) out.push(el("p", {}, "No groups."));
    for (const g of s.groups) {
      const series = (history.lag || {})[g.group_id] || [];
      out.push(el("h3", {}, `${g.group_id} (${g.state}, coordinator ${g.coordinator})`),
        el("p", {}, "Total lag ", el("b", { "data-lag": g.group_id }, g.total_lag.toLocaleString("en")), " ",
          spark(series, `lag of ${g.group_id} over the last ${series.length} polls`)),
        table(["Member", "Client id", "Host", "Assignment"], g.members.map((m) => el("tr", {},
          td(m.member_id), td(m.client_id), td(m.host),
          td(m.assignment.map(([t, ps]) => `${t}: ${ps.join(", ")}`).join("; ") || "-")))),
        table(["Topic", "Partition", "Committed", "Log end", "Lag", "Lag over time"], g.lag.map((l) => {
          const points = (history.partition_lag || {})[`${g.group_id}/${l.topic}/${l.partition}`] || [];
          return el("tr", {}, td(l.topic), num(l.partition), num(l.committed), num(l.end), num(l.lag),
            el("td", {}, spark(points, `lag of ${l.topic}-${l.partition} over the last ${points.length} polls`)));
        })));
    }
    return out;
  },

  moves(s, history, extra) {
    const done = s.reassignments.reduce((a, m) => a + m.bytes_done, 0);
    const total = s.reassignments.reduce((a, m) => a + m.bytes_total, 0);
    const out = [el("h2", {}, "Reassignments")];
    if (!s.reassignments.length) return [...out, el("p", {}, "No partition is being moved.")];
    out.push(el("p", {}, `${bytes(done)} of ${bytes(total)} copied, ${bytes(Math.max(0, total - done))} left`,
      extra.move_rate ? `, ${bytes(extra.move_rate)}/s` : "",
      extra.move_eta_seconds ? `, about ${Math.ceil(extra.move_eta_seconds)} s to go` : ""));
    out.push(table(["Partition", "Replicas", "Adding", "Removing", "Copied", "Of"],
      s.reassignments.map((m) => el("tr", {}, td(`${m.topic}-${m.partition}`), td(ids(m.replicas)),
        td(ids(m.adding)), td(ids(m.removing)), td(bytes(m.bytes_done), "num"), td(bytes(m.bytes_total), "num")))));
    return out;
  },

  quorum(s) {
    if (!s.quorum) return [el("h2", {}, "Metadata quorum"), el("p", {}, "Not available.")];
    const q = s.quorum;
    return [el("h2", {}, "Metadata quorum"),
      el("p", {}, `Leader ${q.leader} in epoch ${q.epoch}, high watermark ${q.high_watermark}.`),
      table(["Node", "Role", "Directory id", "Log end", "Lag", "Endpoint"], q.members.map((m) => el("tr", {},
        td(m.id), td(m.role), td(m.directory_id), num(m.log_end_offset), num(m.lag), td(m.endpoint || "-"))))];
  },

  transactions(s) {
    if (!s.transactions.length) return [el("h2", {}, "Transactions"), el("p", {}, "No transactional ids.")];
    return [el("h2", {}, "Transactions"), table(
      ["Transactional id", "State", "Producer id", "Coordinator", "Open for", "Timeout"],
      s.transactions.map((t) => el("tr", {}, td(t.transactional_id),
        td(t.hanging ? `${t.state} (hanging)` : t.state, t.hanging ? "bad" : ""),
        num(t.producer_id), num(t.coordinator),
        td(t.open_ms === null ? "-" : `${Math.round(t.open_ms / 1000)} s`, "num"),
        td(t.timeout_ms === null ? "-" : `${Math.round(t.timeout_ms / 1000)} s`, "num"))))];
  },

  operator() {
    const c = clusters.find((x) => x.id === current);
    if (!c || !c.phase) return [el("h2", {}, "Operator"), el("p", {}, "This cluster is not managed by the operator.")];
    return [el("h2", {}, "Operator"), el("p", {}, `Phase ${c.phase}.`),
      el("h3", {}, "Conditions"),
      table(["Type", "Status", "Reason", "Message", "Since"], (c.conditions || []).map((x) => el("tr", {},
        td(x.type), td(x.status, x.status === "True" ? "ok" : ""), td(x.reason), td(x.message), td(x.lastTransitionTime)))),
      el("h3", {}, "Recent Events"),
      table(["When", "Type", "Reason", "Message"], (c.events || []).map((e) => el("tr", {},
        td(e.lastTimestamp || e.eventTime || "-"), td(e.type, e.type === "Warning" ? "warn" : ""), td(e.reason), td(e.message))))];
  },
};

function page() {
  const name = (location.hash.replace(/^#\//, "") || "overview").split("/")[0];
  return pages[name] ? name : "overview";
}

function draw() {
  const name = page();
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = $("#main");
  if (!last) { main.replaceChildren(el("p", {}, "Loading…")); return; }
  const content = pages[name](last, last.history || {}, last);
  if (last.errors && last.errors.length) {
    content.push(el("h2", {}, "Not shown"), el("ul", { class: "errors" }, last.errors.map((e) => el("li", {}, e))));
  }
  main.replaceChildren(...content);
  document.title = `Skein: ${name} (${(clusters.find((c) => c.id === current) || {}).name || ""})`;
}

async function poll() {
  clearTimeout(timer);
  try {
    const r = await fetch(`api/clusters`);
    clusters = await r.json();
    if (!current || !clusters.some((c) => c.id === current)) current = clusters.length ? clusters[0].id : null;
    const select = $("#cluster");
    select.replaceChildren(...clusters.map((c) =>
      el("option", c.id === current ? { value: c.id, selected: "" } : { value: c.id },
        c.namespace ? `${c.namespace}/${c.name}${c.phase ? ` (${c.phase})` : ""}` : c.name)));
    if (current) {
      const s = await fetch(`api/snapshot?cluster=${encodeURIComponent(current)}`);
      if (!s.ok) throw new Error(await s.text());
      last = await s.json();
      $("#status").textContent = `Updated ${new Date(last.taken_ms).toLocaleTimeString()}`;
      document.body.dataset.updated = String(last.taken_ms);
    } else {
      $("#status").textContent = "No clusters.";
    }
    draw();
  } catch (e) {
    $("#status").textContent = `Not updated: ${e.message}`;
  }
  timer = setTimeout(poll, POLL_MS);
}

$("#cluster").addEventListener("change", (e) => { current = e.target.value; last = null; draw(); poll(); });
window.addEventListener("hashchange", () => { draw(); $("#main").focus(); });
poll();

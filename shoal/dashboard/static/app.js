// The dashboard's pages: each polls its JSON endpoint every second and re-renders.
"use strict";
const POLL_MS = 1000;
let updates = 0;
let selectedTask = null;
let logView = null;  // the file the logs page streams: {node, name, next offset}
const LOG_CHUNK = 65536;
const LOG_KEEP_CHARS = 1 << 20;  // the page keeps the last MiB of a file's text
let timer = null;

if (/token=/.test(location.hash)) {  // already logged in: drop the token from the bar
  history.replaceState(null, "", location.pathname + "#overview");
}

function esc(v) {
  return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g,
    (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Number(n || 0);
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}
function amount(name, v) {
  return (name === "memory" || name === "object_store_memory") ? bytes(v) : String(+v.toFixed(3));
}
function table(id, headers, rows) {
  return `<table id="${id}"><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}` +
    `</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}
async function getJSON(url) {
  const r = await fetch(url, {credentials: "same-origin"});
  if (r.status === 401) { location.replace("/"); throw new Error("logged out"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

function selectLog(el, node, name) {
  logView = {node, name, next: -1};  // -1: start with the file's tail
  el.querySelector("#log-text").textContent = "";
  el.querySelector("#log-name").textContent = name + (node ? " on node " + node.slice(0, 12) : "");
}

// Append what the file gained since the last poll (a few chunks at most per poll).
async function streamLog(el, view) {
  for (let i = 0; i < 4; i++) {
    const r = await getJSON(`/api/log?node=${encodeURIComponent(view.node)}&name=` +
      `${encodeURIComponent(view.name)}&offset=${view.next}&max=${LOG_CHUNK}`);
    if (view !== logView) return;  // another file was chosen meanwhile
    const pre = el.querySelector("#log-text");
    if (r.reset) pre.textContent = "";
    if (r.data) {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(document.createTextNode(r.data));
      if (pre.textContent.length > LOG_KEEP_CHARS) pre.textContent = pre.textContent.slice(-LOG_KEEP_CHARS);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    view.next = r.next;
    pre.dataset.next = r.next;
    if (r.next >= r.size) return;
  }
}

const pages = {
  async overview(el) {
    const d = await getJSON("/api/overview");
    const t = d.totals;
    const cards = [["nodes-alive", "Nodes alive", d.alive_nodes],
      ["store-used", "Object store used", bytes(t.object_store_used) + " / " + bytes(t.object_store_capacity)],
      ["spilled", "Spilled (total)", bytes(t.spilled_bytes_total)],
      ["on-disk", "On disk now", bytes(t.bytes_on_disk)]]
      .map(([id, label, v]) => `<div class="card"><div>${label}</div><div class="n" id="${id}">${esc(v)}</div></div>`);
    const nodes = d.nodes.map((n) => `<tr data-node-id="${esc(n.node_id)}"><td>${esc(n.node_id.slice(0, 12))}</td>` +
      `<td>${esc(n.address)}</td><td>${n.alive ? "ALIVE" : "DEAD " + esc(n.death_cause)}</td>` +
      `<td class="resources">${Object.entries(n.resources).map(([k, v]) =>
        `<span data-resource="${esc(k)}">${esc(k)} ${amount(k, v.used)}/${amount(k, v.total)}</span>`).join(", ")}</td>` +
      `<td>${bytes((n.store || {}).used)} / ${bytes((n.store || {}).capacity)}</td>` +
      `<td>${bytes((n.store || {}).spilled_bytes_total)}</td></tr>`);
    const demand = d.demand.map((x) => `<li>${x.count} x ${esc(JSON.stringify(x.shape))} at ${esc(x.node_id.slice(0, 12))}` +
      `${x.infeasible ? " (no node has these resources)" : " (waiting for resources)"}</li>`)
      .concat(d.pending_actors.map((a) => `<li>actor ${esc(a.class_name)} ${esc(JSON.stringify(a.resources))}</li>`));
    const tasks = Object.entries(d.tasks).map(([s, n]) => `<span>${esc(s)}: <b id="overview-task-${esc(s)}">${n}</b></span>`);
    el.innerHTML = `<div class="cards">${cards.join("")}</div>` +
      table("nodes", ["node", "address", "state", "resources used/total", "object store", "spilled"], nodes) +
      `<h3>Pending demand</h3><ul id="demand">${demand.join("") || "<li>(none)</li>"}</ul>` +
      `<h3>Tasks</h3><p id="overview-tasks">${tasks.join(" &nbsp; ") || "(none)"}</p>`;
  },

  async tasks(el) {
    if (!el.querySelector("#task-filter-name")) {
      el.innerHTML = `<div id="task-counts" class="cards"></div><h3>By function</h3><div id="task-functions"></div>` +
        `<p>Filter: name <input id="task-filter-name"> state <select id="task-filter-state"><option value="">any</option>` +
        ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING", "FINISHED", "FAILED"]
          .map((s) => `<option>${s}</option>`).join("") + `</select></p>` +
        `<div id="task-table"></div><div id="task-detail"></div>`;
      el.querySelector("#task-filter-name").addEventListener("input", () => refresh());
      el.querySelector("#task-filter-state").addEventListener("change", () => refresh());
    }
    const name = el.querySelector("#task-filter-name").value;
    const state = el.querySelector("#task-filter-state").value;
    const d = await getJSON(`/api/tasks?name=${encodeURIComponent(name)}&state=${encodeURIComponent(state)}`);
    el.querySelector("#task-counts").innerHTML = Object.entries(d.state_counts).map(([s, n]) =>
      `<div class="card"><div>${esc(s)}</div><div class="n" id="task-count-${esc(s)}">${n}</div></div>`).join("") +
      `<div class="card"><div>total</div><div class="n" id="task-total">${d.total}</div></div>`;
    el.querySelector("#task-functions").innerHTML = table("functions", ["function", "type", "counts"],
      Object.values(d.by_function).map((f) => `<tr data-function="${esc(f.func_or_class_name)}"><td>${esc(f.func_or_class_name)}</td>` +
        `<td>${esc(f.type)}</td><td>${Object.entries(f.state_counts).map(([s, n]) => `${esc(s)}: ${n}`).join(", ")}</td></tr>`));
    el.querySelector("#task-table").innerHTML = `<p>showing <span id="task-matching">${d.matching}</span> tasks</p>` +
      table("tasks-table", ["task", "name", "state", "type", "node", "worker pid", "error"],
        d.rows.map((t) => `<tr class="clickable" data-task-id="${esc(t.task_id)}"><td>${esc(t.task_id)}</td>` +
          `<td>${esc(t.name)}</td><td>${esc(t.state)}</td><td>${esc(t.type)}</td><td>${esc((t.node_id || "").slice(0, 12))}</td>` +
          `<td>${esc(t.worker_pid)}</td><td>${esc(t.error_type)}</td></tr>`));
    el.querySelectorAll("#tasks-table tr[data-task-id]").forEach((tr) =>
      tr.addEventListener("click", () => { selectedTask = tr.dataset.taskId; refresh(); }));
    if (selectedTask) {
      const t = await getJSON("/api/tasks/" + encodeURIComponent(selectedTask));
      el.querySelector("#task-detail").innerHTML = `<h3>Task ${esc(t.task_id)}</h3>` +
        table("task-fields", ["field", "value"], Object.entries(t).filter(([k]) => k !== "error_message")
          .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td></tr>`)) +
        (t.error_message ? `<h4>Error</h4><pre id="task-error">${esc(t.error_message)}</pre>` : "");
    }
  },

  async actors(el) {
    const d = await getJSON("/api/actors");
    el.innerHTML = `<p>actors: <b id="actor-total">${d.summary.total_actors}</b></p>` +
      table("actors-table", ["actor", "class", "state", "name", "node", "pid", "restarts", "calls in flight", "death cause"],
        d.actors.map((a) => `<tr data-actor-id="${esc(a.actor_id)}"><td>${esc(a.actor_id.slice(0, 16))}</td><td>${esc(a.class_name)}</td>` +
          `<td>${esc(a.state)}</td><td>${esc(a.name)}</td><td>${esc((a.node_id || "").slice(0, 12))}</td><td>${esc(a.pid)}</td>` +
          `<td>${esc(a.num_restarts)}</td><td class="in-flight">${a.calls_in_flight.map((c) => esc(c.name) + " (" + esc(c.state) + ")").join(", ")}</td>` +
          `<td>${esc(a.death_cause ? a.death_cause.error_message : "")}</td></tr>`));
  },

  async objects(el) {
    const d = await getJSON("/api/objects");
    const s = d.summary;
    el.innerHTML = `<div class="cards"><div class="card"><div>objects</div><div class="n" id="objects-total">${s.total_objects}</div></div>` +
      `<div class="card"><div>size</div><div class="n" id="objects-size">${bytes(s.total_size_bytes)}</div></div>` +
      `<div class="card"><div>references</div><div class="n" id="objects-refs">${d.total_rows}</div></div></div>` +
      table("objects-table", ["object", "size", "reference type", "holder pid", "holder", "node", "storage", "copies", "owner"],
        d.rows.map((o) => `<tr data-object-id="${esc(o.object_id)}"><td>${esc(o.object_id.slice(0, 20))}</td>` +
          `<td>${o.object_size < 0 ? "?" : bytes(o.object_size)}</td><td>${esc(o.reference_type)}</td><td>${esc(o.pid)}</td>` +
          `<td>${esc(o.type)}</td><td>${esc((o.node_id || "").slice(0, 12))}</td><td>${esc(o.storage)}</td>` +
          `<td>${esc(Object.entries(o.copies || {}).map(([n, w]) => n.slice(0, 8) + ":" + w).join(" "))}</td><td>${esc(o.owner)}</td></tr>`));
  },

  async logs(el) {
    if (!el.querySelector("#log-files")) {
      el.innerHTML = `<div id="log-files"></div><h3 id="log-name"></h3><pre id="log-text"></pre>`;
      if (logView) selectLog(el, logView.node, logView.name);  // back on the page: from the tail
    }
    const d = await getJSON("/api/logs");
    if (!logView && d.logs.length) {
      const first = d.logs.find((l) => l.stream === "stdout") || d.logs[0];
      selectLog(el, first.node_id, first.name);
    }
    el.querySelector("#log-files").innerHTML = table("log-list",
      ["node", "file", "worker", "pid", "actor / tasks", "size"],
      d.logs.map((l) => `<tr class="clickable${logView && logView.node === l.node_id && logView.name === l.name ? " selected" : ""}"` +
        ` data-node="${esc(l.node_id)}" data-log="${esc(l.name)}"><td>${esc(l.node_id ? l.node_id.slice(0, 12) : "(head's folder)")}</td>` +
        `<td>${esc(l.name)}</td><td>${esc((l.worker_id || "").slice(0, 12))}${l.worker_id && !l.alive ? " (exited)" : ""}</td>` +
        `<td>${esc(l.pid)}</td><td>${esc(l.actor || l.tasks.join(", "))}</td><td>${bytes(l.size)}</td></tr>`));
    el.querySelectorAll("#log-list tr[data-log]").forEach((tr) => tr.addEventListener("click", () => {
      selectLog(el, tr.dataset.node, tr.dataset.log); refresh(); }));
    if (logView) await streamLog(el, logView);
  },
  async timeline(el) {
    const d = await getJSON("/api/stream?seconds=300");
    const span = Math.max(1, d.now_ms - d.since_ms);
    let start = d.now_ms;
    d.lanes.forEach((l) => l.tasks.forEach((t) => { start = Math.min(start, t.start); }));
    const from = Math.max(d.since_ms, start - 100);
    const width = Math.max(1, d.now_ms - from);
    el.innerHTML = `<p><a href="/api/timeline" id="trace-download">Download the Chrome trace (chrome://tracing, Perfetto)</a>` +
      ` &nbsp; <span id="stream-count">${d.lanes.reduce((n, l) => n + l.tasks.length, 0)}</span> tasks in the last ${Math.round(span / 1000)} s</p>` +
      `<div id="stream">${d.lanes.map((l) => `<div><span class="lane-name">${esc(l.lane)}</span>` +
        `<div class="lane" style="display:inline-block;width:calc(100% - 13em)">${l.tasks.map((t) =>
          `<div class="bar ${esc(t.state)}" title="${esc(t.name)} ${t.end - t.start} ms" style="left:${(100 * (t.start - from) / width).toFixed(3)}%;` +
          `width:${(100 * (t.end - t.start) / width).toFixed(3)}%"></div>`).join("")}</div></div>`).join("")}</div>`;
  },

  async shuffle(el) {
    const d = await getJSON("/api/shuffle");
    const stages = ["map", "merge", "reduce"].map((s) => {
      const c = d.stages[s] || {};
      const done = c.FINISHED || 0;
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      return `<tr data-stage="${s}"><td>${s}</td><td class="done">${done}</td><td class="total">${total}</td>` +
        `<td>${esc(Object.entries(c).map(([k, v]) => k + ": " + v).join(", "))}</td></tr>`;
    });
    el.innerHTML = table("shuffle-table", ["stage", "finished", "seen", "by state"], stages) +
      `<p>Bytes spilled (total): <b id="shuffle-spilled">${bytes(d.spilled_bytes_total)}</b></p>`;
  },
};

function current() {
  const name = location.hash.replace(/^#/, "");
  return pages[name] ? name : "overview";
}

async function refresh() {
  const name = current();
  document.querySelectorAll("#nav a[data-page]").forEach((a) =>
    a.classList.toggle("active", a.dataset.page === name));
  const el = document.getElementById("page");
  if (el.dataset.page !== name) { el.innerHTML = ""; el.dataset.page = name; }
  try {
    await pages[name](el);
    updates += 1;
    document.getElementById("update-count").textContent = updates;
  } catch (err) {
    console.error(err);
  }
}

function loop() {
  clearTimeout(timer);
  refresh().finally(() => { timer = setTimeout(loop, POLL_MS); });
}
window.addEventListener("hashchange", loop);
loop();

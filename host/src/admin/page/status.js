// The status page of smt's admin endpoint: reads GET /status every 2 s and
// renders it; rolls back and reconfigures transforms through the admin API.
// Everything from the server is inserted as text (textContent), never as HTML.
"use strict";

const REFRESH_MS = 2000;
let token = sessionStorage.getItem("smt-token") || "";
let armed = null; // the transform whose rollback waits for its confirmation
let editing = null; // the transform whose config is being edited

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function num(v, digits) {
  if (v === null || v === undefined) return "–";
  return Number(v).toFixed(digits === undefined ? 1 : digits);
}

function eta(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "–";
}

function say(text, cls) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = cls || "";
}

function versionCell(v, testid) {
  const td = el("td", null, { "data-testid": testid });
  if (!v) {
    td.textContent = "–";
    return td;
  }
  td.appendChild(el("code", v.version, { "data-role": "version" }));
  td.appendChild(el("div", "activated " + when(v.activated_at_ms), { class: "muted" }));
  td.appendChild(el("div", (v.trigger || "") + " · " + (v.source || ""), { class: "muted" }));
  return td;
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function n(v, testid, digits) {
  const a = { class: "n" };
  if (testid) a["data-testid"] = testid;
  return el("td", digits === 0 ? (v === null || v === undefined ? "–" : String(v)) : num(v, digits), a);
}

function render(r) {
  const p = r.pipeline;
  const banner = document.getElementById("banner");
  if (p.failed) {
    banner.textContent = "FAILED: the pipeline stopped on an error";
    banner.className = "bad";
  } else if (p.stalled) {
    banner.textContent = "STALLED: a partition makes no progress (stall-timeout " + p.stall_timeout_ms / 1000 + " s)";
    banner.className = "bad";
  } else {
    banner.textContent = p.ready ? "running, nothing stalled" : "starting (not ready yet)";
    banner.className = p.ready ? "ok" : "warn";
  }
  document.getElementById("updated").textContent = "updated " + new Date(r.generated_at_ms).toLocaleTimeString();

  const routes = document.querySelector("#routes tbody");
  routes.replaceChildren();
  let lagTotal = 0;
  for (const x of r.routes) {
    lagTotal += x.lag;
    const errors = Object.entries(x.errors_by_kind).map(([k, c]) => k + "=" + c).join(", ") || "0";
    const actions = el("td");
    const rb = el("button", armed === x.transform ? "Confirm rollback" : "Roll back", {
      type: "button",
      "data-testid": "rollback-" + x.transform,
    });
    rb.disabled = !x.previous;
    rb.title = x.previous ? "make " + x.previous.version + " active again" : "no previous version";
    rb.addEventListener("click", () => rollback(x.transform));
    const cf = el("button", "Change config…", { type: "button", "data-testid": "config-" + x.transform });
    cf.addEventListener("click", () => editConfig(x.transform));
    actions.append(rb, cf);
    routes.appendChild(row([
      el("td", x.name),
      el("td", x.topic_pattern ? "/" + x.topic_pattern + "/" : x.topics.join(", ")),
      el("td", x.transform),
      versionCell(x.active, "active-" + x.name),
      versionCell(x.previous, "previous-" + x.name),
      n(x.records_in_per_s, "in-rate-" + x.name),
      n(x.records_out_per_s, "out-rate-" + x.name),
      n(x.write_latency_ms, "latency-" + x.name, 2),
      el("td", errors, { "data-testid": "errors-" + x.name }),
      n(x.dlq_records, "dlq-" + x.name, 0),
      n(x.lag, "lag-" + x.name, 0),
      el("td", eta(x.eta_seconds)),
      actions,
    ]));
    routes.lastChild.setAttribute("data-out-total", String(x.records_out_total));
  }
  routes.setAttribute("data-lag-total", String(lagTotal));

  const parts = document.querySelector("#partitions tbody");
  parts.replaceChildren();
  for (const x of r.routes) {
    for (const q of x.partitions) {
      const state = q.stall ? "STALLED: " + q.stall : q.paused ? "paused" : "ok";
      const tr = row([
        el("td", x.name),
        el("td", q.topic + "/" + q.partition),
        n(q.committed, null, 0),
        n(q.done, null, 0),
        n(q.end, null, 0),
        n(q.lag, null, 0),
        n(q.rate_per_s),
        el("td", eta(q.eta_seconds)),
        el("td", state, { class: q.stall ? "bad" : "" }),
      ]);
      parts.appendChild(tr);
    }
  }

  const errors = document.querySelector("#errors tbody");
  errors.replaceChildren();
  for (const e of r.errors) {
    errors.appendChild(row([
      el("td", when(e.at_ms)),
      el("td", e.topic + "/" + e.partition + "@" + e.offset),
      el("td", e.route || "–"),
      el("td", e.transform + " " + e.version),
      el("td", e.kind),
      el("td", e.policy),
      el("td", e.cause),
    ]));
  }
}

async function refresh() {
  try {
    const res = await fetch("/status", { headers: headers(), cache: "no-store" });
    if (res.status === 401) {
      const b = document.getElementById("banner");
      b.textContent = "this endpoint needs the admin token: enter it above";
      b.className = "warn";
      return;
    }
    if (!res.ok) throw new Error("GET /status answered " + res.status);
    render(await res.json());
  } catch (e) {
    const b = document.getElementById("banner");
    b.textContent = "cannot read /status: " + e.message;
    b.className = "bad";
  }
}

async function answer(res) {
  const text = await res.text();
  try {
    const j = JSON.parse(text);
    return j.error || j.reason || j.outcome || text;
  } catch (_) {
    return text;
  }
}

async function rollback(name) {
  if (armed !== name) {
    armed = name;
    say("Click “Confirm rollback” to make the previous version of " + name + " active again.", "warn");
    refresh();
    return;
  }
  armed = null;
  const res = await fetch("/transforms/" + encodeURIComponent(name) + "/rollback", {
    method: "POST",
    headers: headers(),
  });
  const what = await answer(res);
  say(res.ok ? "Rolled back " + name + ": " + what : "Rollback of " + name + " refused (" + res.status + "): " + what,
      res.ok ? "ok" : "bad");
  refresh();
}

async function editConfig(name) {
  const res = await fetch("/transforms/" + encodeURIComponent(name), { headers: headers() });
  if (!res.ok) {
    say("Cannot read the config of " + name + " (" + res.status + "): " + (await answer(res)), "bad");
    return;
  }
  const t = await res.json();
  editing = name;
  document.getElementById("config-name").textContent = name;
  document.getElementById("config-text").value = JSON.stringify(t.active.config, null, 2);
  document.getElementById("config-editor").hidden = false;
}

async function applyConfig() {
  if (!editing) return;
  const name = editing;
  const body = document.getElementById("config-text").value;
  try {
    JSON.parse(body);
  } catch (e) {
    say("The config is not JSON: " + e.message, "bad");
    return;
  }
  const res = await fetch("/transforms/" + encodeURIComponent(name) + "/config", {
    method: "PUT",
    headers: headers({ "Content-Type": "application/json" }),
    body: body,
  });
  const what = await answer(res);
  say(res.ok ? "Config of " + name + ": " + what : "Config of " + name + " refused (" + res.status + "): " + what,
      res.ok ? "ok" : "bad");
  if (res.ok) {
    editing = null;
    document.getElementById("config-editor").hidden = true;
  }
  refresh();
}

document.getElementById("token").value = token;
document.getElementById("save-token").addEventListener("click", () => {
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("smt-token", token);
  say(token ? "Token set." : "Token cleared.", "");
  refresh();
});
document.getElementById("config-apply").addEventListener("click", applyConfig);
document.getElementById("config-cancel").addEventListener("click", () => {
  editing = null;
  document.getElementById("config-editor").hidden = true;
});
refresh();
setInterval(refresh, REFRESH_MS);

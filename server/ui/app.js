// The cluster page: polls /v1/cluster of the server it came from (which gathers every
// member's public /v1/status) and redraws. No framework, no build step.
"use strict";

const POLL_MS = 500;

function $(id) { return document.getElementById(id); }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function ms(n) {
  if (n === null || n === undefined || n < 0) return "never";
  if (n < 1000) return n + " ms";
  return (n / 1000).toFixed(1) + " s";
}

function render(cv) {
  const leader = cv.leader && cv.leader.address ? cv.leader.address : "";
  const el = $("leader");
  el.textContent = leader ? (cv.leader.id && cv.leader.id !== leader ? cv.leader.id + " (" + leader + ")" : leader) : "none known";
  el.dataset.leader = leader;
  $("epoch").textContent = cv.epoch;
  $("server").textContent = cv.server;
  $("server2").textContent = cv.server;
  $("updated").textContent = new Date(cv.time).toLocaleTimeString();
  $("error").textContent = "";

  const body = $("members").tBodies[0];
  body.replaceChildren();
  for (const m of cv.members) {
    const tr = document.createElement("tr");
    tr.dataset.address = m.address;
    tr.dataset.role = m.reachable ? m.role : "unreachable";
    if (m.reachable && m.role === "leader") tr.className = "leader";
    if (!m.reachable) tr.className = "down";
    cell(tr, m.address);
    cell(tr, m.id);
    if (!m.reachable) {
      const td = cell(tr, "unreachable", "bad");
      td.colSpan = 6;
      td.title = m.error || "";
    } else {
      cell(tr, m.role, "role-" + m.role);
      cell(tr, m.epoch, "num");
      cell(tr, m.applied, "num");
      cell(tr, m.lag === null ? "?" : m.lag, "num");
      cell(tr, m.role === "leader" ? "-" : ms(m.last_contact_ms) + (m.last_contact_ms >= 0 ? " ago" : ""), "num");
      cell(tr, m.keys, "num");
    }
    body.appendChild(tr);
  }

  const ch = $("changes").tBodies[0];
  ch.replaceChildren();
  const changes = (cv.leader_changes || []).slice().reverse();
  for (const c of changes) {
    const tr = document.createElement("tr");
    cell(tr, new Date(c.at).toLocaleTimeString());
    cell(tr, c.from && c.from.address ? c.from.address : "(none)");
    cell(tr, c.to.address);
    cell(tr, c.epoch, "num");
    cell(tr, ms(c.without_leader_ms), "num");
    ch.appendChild(tr);
  }
  if (changes.length === 0) {
    const tr = document.createElement("tr");
    cell(tr, "none yet", "muted").colSpan = 5;
    ch.appendChild(tr);
  }
}

async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 3000);
  try {
    const resp = await fetch("/v1/cluster", { cache: "no-store", signal: ctl.signal });
    if (!resp.ok) throw new Error("GET /v1/cluster: " + resp.status);
    render(await resp.json());
  } catch (e) {
    $("error").textContent = "(" + e.message + ")";
  } finally {
    clearTimeout(timer);
    setTimeout(poll, POLL_MS);
  }
}

poll();

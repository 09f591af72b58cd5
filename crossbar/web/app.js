// Live view of the etcd map "notes" through the etcdwamp WAMP component.
//
// No gap, no duplicate: subscribe first (buffering events), then take a
// snapshot with get_and_watch; apply only events newer than the snapshot.
"use strict";

const params = new URLSearchParams(window.location.search);
const ticket = params.get("ticket") || "writer-secret"; // demo credentials, see README
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";

const rows = new Map(); // key -> {value, revision}
let snapshotRevision = null;
const early = [];

function render() {
  const body = document.getElementById("rows");
  body.textContent = "";
  for (const key of [...rows.keys()].sort()) {
    const { value, revision } = rows.get(key);
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    const cells = [key, JSON.stringify(value), String(revision)];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    const edit = document.createElement("button");
    edit.textContent = "edit";
    edit.onclick = () => {
      document.getElementById("key").value = key;
      document.getElementById("value").value =
        typeof value === "string" ? value : JSON.stringify(value);
    };
    const del = document.createElement("button");
    del.textContent = "delete";
    del.className = "delete";
    del.onclick = () => session.call("etcd.map.delete", ["notes", key]).catch(report);
    td.append(edit, " ", del);
    tr.appendChild(td);
    body.appendChild(tr);
  }
  if (snapshotRevision !== null) {
    document.getElementById("status").textContent =
      "live: " + rows.size + " notes (snapshot at revision " + snapshotRevision + ")";
  }
}

function apply(event) {
  if (snapshotRevision === null) { early.push(event); return; }
  if (event.revision <= snapshotRevision) return; // already in the snapshot
  const current = rows.get(event.key);
  if (current && current.revision >= event.revision) return;
  if (event.op === "delete") rows.delete(event.key);
  else rows.set(event.key, { value: event.value, revision: event.revision });
  render();
}

function report(err) {
  const text = (err && err.error) ? err.error + ": " + (err.args || []).join(" ") : String(err);
  document.getElementById("status").textContent = "error: " + text;
}

let session = null;
const connection = new autobahn.Connection({
  url: wsUrl,
  realm: "realm1",
  authmethods: ["ticket"],
  authid: "writer",
  onchallenge: () => ticket,
  max_retries: -1,
});

connection.onopen = async (s) => {
  session = s;
  snapshotRevision = null;
  early.length = 0;
  try {
    await session.subscribe("etcd.map.notes.on_change", (args) => apply(args[0]));
    await session.subscribe("etcd.map.notes.on_resync", () => connection.onopen(session));
    const snap = await session.call("etcd.map.get_and_watch", ["notes"]);
    rows.clear();
    for (const item of snap.items) rows.set(item.key, { value: item.value, revision: item.revision });
    snapshotRevision = snap.revision;
    early.splice(0).forEach(apply);
    render();
    document.body.dataset.ready = "true";
  } catch (err) {
    report(err);
  }
};
connection.onclose = (reason) => {
  document.body.dataset.ready = "false";
  document.getElementById("status").textContent = "disconnected (" + reason + "), retrying…";
};

document.getElementById("editor").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = document.getElementById("key").value;
  const raw = document.getElementById("value").value;
  let value = raw;
  try { value = JSON.parse(raw); } catch (e) { /* plain text note */ }
  session.call("etcd.map.put", ["notes", key, value]).catch(report);
});

connection.open();

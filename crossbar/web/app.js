// The notes demo: a live table of the etcd map "notes", editable by anyone
// the router lets in anonymously (the map's rules decide who may write), with
// who else has the page open (etcd.presence: a key per session, gone when it leaves).
import { describeError, followMap } from "./session.js";

const status = document.getElementById("status");
const connection = document.getElementById("connection");
const here = document.getElementById("here");
const form = document.getElementById("editor");
let live = null;
let shown = null; // key -> revision of the rows on screen (null before the first render)

function report(err) {
  status.textContent = "error: " + describeError(err);
}

function render(rows) {
  const body = document.getElementById("rows");
  body.textContent = "";
  // The rows whose revision is new since the last render changed just now
  // (none on the first render: everything would light up).
  const changed = [];
  for (const key of [...rows.keys()].sort()) {
    const { value, revision: rowRevision, error } = rows.get(key);
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    // A marked row (its stored value cannot be read): say so instead of "null".
    if (error) tr.classList.add("bad-value");
    if (shown !== null && shown.get(key) !== rowRevision) {
      tr.classList.add("changed");
      changed.push([key, rowRevision]);
    }
    const text = error ? "unreadable: " + error.message : JSON.stringify(value);
    for (const cell of [key, text, String(rowRevision)]) {
      const td = document.createElement("td");
      td.textContent = cell;
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
    del.onclick = () => live.delete(key).catch(report);
    td.append(edit, " ", del);
    tr.appendChild(td);
    body.appendChild(tr);
  }
  const removed = shown === null ? [] : [...shown.keys()].filter((key) => !rows.has(key));
  shown = new Map([...rows].map(([key, row]) => [key, row.revision]));
  // A row's own revision, never the map's: etcd's revision counts every write in
  // the store (the publisher's checkpoints too), so it runs ahead of the rows.
  let line = rows.size === 1 ? "1 note" : rows.size + " notes";
  if (changed.length === 1) line += "; " + changed[0][0] + " changed (revision " + changed[0][1] + ")";
  else if (changed.length > 1) line += "; " + changed.length + " changed";
  if (removed.length === 1) line += "; " + removed[0] + " deleted";
  else if (removed.length > 1) line += "; " + removed.length + " deleted";
  status.textContent = line;
}

// Who is here: every session that put its "page" presence key. Subscribe
// first, then list, so that no join or leave falls between the two.
function followPresence(session) {
  const sessions = new Set();
  const gone = new Set(); // session ids never come back: a list may not revive one
  let stopped = false;
  const show = () => {
    if (stopped) return;
    const others = [...sessions].filter((id) => id !== session.id).length;
    here.textContent = others === 0 ? "only you are here"
      : "you and " + others + (others === 1 ? " other are here" : " others are here");
    here.dataset.count = String(others + 1);
  };
  const onChange = ([event]) => {
    if (event.op === "join") sessions.add(event.session);
    else if (event.op === "leave") {
      sessions.delete(event.session);
      gone.add(event.session);
    }
    show();
  };
  (async () => {
    await session.subscribe("etcd.presence.on_change", onChange);
    await session.call("etcd.presence.put", ["page", "viewing"]);
    for (const { session: id } of await session.call("etcd.presence.list")) {
      if (!gone.has(id)) sessions.add(id);
    }
    sessions.add(session.id);
    show();
  })().catch((err) => {
    here.textContent = "presence unavailable: " + describeError(err);
  });
  return () => {
    stopped = true;
    sessions.clear();
  };
}

// A busy map sends hundreds of events a second, and render() rebuilds the whole
// table: once per event, a page of thousands of rows fell minutes behind its socket
// (it even noticed the death of its node minutes late: the close waited behind the
// events). So the table is redrawn with the latest rows at most every
// RENDER_INTERVAL_MS; the live map itself applies every event at once.
const RENDER_INTERVAL_MS = 100;
let latestRows = null;
let renderTimer = null;
let lastRender = -Infinity;

function renderSoon(rows) {
  latestRows = rows;
  if (renderTimer !== null) return;
  const wait = Math.max(0, lastRender + RENDER_INTERVAL_MS - performance.now());
  renderTimer = setTimeout(() => {
    renderTimer = null;
    lastRender = performance.now();
    render(latestRows);
  }, wait);
}

followMap({
  map: "notes",
  onValue: renderSoon,
  onError: report,
  status,
  connection,
  onLive: (made) => {
    // One live map for the page's life: after a reconnect its first render
    // marks what changed while the page was away.
    live = made;
    window.notes = made; // for the browser tests and the curious
  },
  onJoin: followPresence,
});

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = document.getElementById("key").value;
  const raw = document.getElementById("value").value;
  let value = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // not JSON: a plain text note
  }
  if (!live) {
    status.textContent = "not connected: the note was not saved";
    return;
  }
  live.put(key, value).then(() => {
    // Cleared only once etcd has it: a refused note stays in the form to fix.
    form.reset();
    document.getElementById("key").focus();
  }, report);
});

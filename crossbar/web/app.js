// The notes demo: a live table of the etcd map "notes", editable by anyone
// the router lets in anonymously (the map's rules decide who may write).
import { describeError, followMap } from "./session.js";

const status = document.getElementById("status");
let live = null;

function report(err) {
  status.textContent = "error: " + describeError(err);
}

function render(rows, revision) {
  const body = document.getElementById("rows");
  body.textContent = "";
  for (const key of [...rows.keys()].sort()) {
    const { value, revision: rowRevision, error } = rows.get(key);
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    // A marked row (its stored value cannot be read): say so instead of "null".
    if (error) tr.className = "bad-value";
    const shown = error ? "unreadable: " + error.message : JSON.stringify(value);
    for (const text of [key, shown, String(rowRevision)]) {
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
    del.onclick = () => live.delete(key).catch(report);
    td.append(edit, " ", del);
    tr.appendChild(td);
    body.appendChild(tr);
  }
  status.textContent = "live: " + rows.size + " notes at revision " + revision;
}

followMap({
  map: "notes",
  onValue: render,
  onError: report,
  status,
  onLive: (fresh) => {
    live = fresh;
    window.notes = fresh; // for the browser tests and the curious
  },
});

document.getElementById("editor").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = document.getElementById("key").value;
  const raw = document.getElementById("value").value;
  let value = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // not JSON: a plain text note
  }
  if (live) live.put(key, value).catch(report);
});

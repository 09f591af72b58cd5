// A live oid -> oid map shown exactly: every id and count is a BigInt here,
// sent and received through the JSON serializer without rounding (see
// livemap.js for the wire form of oids above 2**53 - 1).
import { exactOid, liveMap } from "./livemap.js";
import { connectAnonymously, describeError } from "./session.js";

const status = document.getElementById("status");
let live = null;

function report(err) {
  status.textContent = "error: " + describeError(err);
}

function render(rows, revision) {
  const body = document.getElementById("rows");
  body.textContent = "";
  const ordered = [...rows].map(([key, row]) => [exactOid(key), row]);
  ordered.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [id, { value, revision: rowRevision }] of ordered) {
    const tr = document.createElement("tr");
    tr.dataset.key = id.toString();
    for (const text of [id.toString(), exactOid(value).toString(), String(rowRevision)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  status.textContent = "live: " + rows.size + " counters at revision " + revision;
}

connectAnonymously({
  onStatus: (text) => {
    document.body.dataset.ready = "false";
    status.textContent = text;
  },
  onJoin: (session) => {
    live = liveMap(session, { map: "counters", onValue: render, onError: report });
    window.counters = live; // for the browser tests
    live.ready.then(() => { document.body.dataset.ready = "true"; }, () => {});
    const mine = live;
    return () => mine.stop();
  },
});

document.getElementById("editor").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = BigInt(document.getElementById("key").value);
  const count = BigInt(document.getElementById("value").value);
  if (live) live.put(id, count).catch(report);
});

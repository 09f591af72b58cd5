// A live oid -> oid map shown exactly: every id and count is a BigInt here,
// sent and received through the JSON serializer without rounding (see
// livemap.js for the wire form of oids above 2**53 - 1).
import { exactOid } from "./livemap.js";
import { describeError, followMap } from "./session.js";

const status = document.getElementById("status");
let live = null;

function report(err) {
  status.textContent = "error: " + describeError(err);
}

function render(rows) {
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
  status.textContent = rows.size === 1 ? "1 counter" : rows.size + " counters";
}

followMap({
  map: "counters",
  onValue: render,
  onError: report,
  status,
  onLive: (fresh) => {
    live = fresh;
    window.counters = fresh; // for the browser tests
  },
});

document.getElementById("editor").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = BigInt(document.getElementById("key").value);
  const count = BigInt(document.getElementById("value").value);
  if (!live) {
    status.textContent = "not connected: the counter was not saved";
    return;
  }
  live.put(id, count).then(() => ev.target.reset(), report);
});

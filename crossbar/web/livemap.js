// livemap.js: a live, exact copy of one etcdwamp map in the browser.
//
//   import { liveMap, exactOid } from "./livemap.js";
//   const live = liveMap(session, { map: "notes", onValue: (rows, revision) => ... });
//   await live.ready;                 // the first snapshot is in live.rows
//   await live.put("k", {any: "json"});
//   live.stop();
//
// `session` is a joined autobahn-js session. `live.rows` is the copy itself, a
// Map from key to {value, revision} (and `error` for a row whose stored value
// cannot be read: see rowOf; read it, never change it; `live.revision`
// is the highest etcd revision it reflects); `onValue(rows, revision)` gets a
// fresh Map after every change (Firebase's onValue, with etcd revisions).
// Stop it when its session closes: the next session needs a live map of its own.
//
// Protocol (the etcdwamp component, per-map URIs under `<prefix>.map.<map>.`):
//   1. subscribe to `on_change` and `on_resync` first; events that arrive
//      before the snapshot wait in a buffer, so none falls into a gap;
//   2. call `get_and_watch()` -> {revision, items}: the map at `revision`
//      (in pages of that shape, as progressive results, when the session's
//      promises can carry them: a big map never travels as one message);
//   3. apply an event only if its revision is above the snapshot's and above
//      the revision this copy last saw for the key (a delete is remembered as
//      a tombstone until the next snapshot), so re-delivered or old events
//      (a new publisher resuming from its checkpoint) change nothing;
//   4. `on_resync` (the publisher lost history to a compaction) means events
//      may be missing: re-read with get_and_watch and replace the copy.
// The two subscriptions are made once and kept for the life of the live map:
// a resync only re-reads, so no resync ever adds a handler; resyncs that
// arrive while a read is running are merged into one more read after it.
// If a read fails, `onError` hears of it and the copy stays as it was, no
// longer following changes, until `resync()` (or the next on_resync) succeeds.
//
// Debugging: `globalThis.etcdLiveMapDebug` counts, for all live maps of the
// page, the handlers held per topic (`handlers[topic]`, 1 while a map is
// live), the snapshots read, their progressive pages and the resyncs asked
// for per map (`snapshots["etcd.map.notes"]`, `pages[...]`, `resyncs[...]`).
//
// Exact 64-bit ids: an oid (key or value) above 2**53 - 1 cannot be a JSON
// number without rounding, so the component sends such oids as decimal
// strings ("9223372036854775813") and smaller ones as numbers; it accepts
// both forms, too. This module keeps them exactly as received: never apply
// Number() or arithmetic to an oid string. `exactOid(x)` turns either form
// into a BigInt for comparison or arithmetic; `put`/`delete`/`get` accept
// BigInt keys and values and send them in the same exact form (a BigInt is
// not serialisable by JSON.stringify, so it never goes out as is).

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** An oid as received (number or decimal string) or given (BigInt) -> BigInt. */
export function exactOid(x) {
  if (typeof x === "bigint") return x;
  if (typeof x === "number" && Number.isSafeInteger(x) && x >= 0) return BigInt(x);
  if (typeof x === "string" && /^[0-9]+$/.test(x)) return BigInt(x);
  throw new TypeError("not an exact oid: " + String(x));
}

/** What goes on the wire for a BigInt: a number when exact, else a decimal string. */
export function wireValue(x) {
  if (typeof x !== "bigint") return x;
  return x >= -SAFE && x <= SAFE ? Number(x) : x.toString();
}

// The module's bookkeeping, shared by every live map in the page, for tests
// and debugging: handlers per topic (counted where subscribed/unsubscribed),
// snapshots read, resyncs asked for.
const debug = (globalThis.etcdLiveMapDebug ??= { handlers: {}, snapshots: {}, resyncs: {} });
debug.pages ??= {}; // progressive snapshot pages received per map

/** Whether calls on `session` can receive progressive results (when.js deferreds can). */
function progressive(session) {
  return typeof session._defer === "function" && typeof session._defer().notify === "function";
}

function bump(table, key, by) {
  table[key] = (table[key] || 0) + by;
}

// A row of the copy from a snapshot item or an event. A stored value the
// component cannot read (written to etcd behind its back) comes marked:
// value null and `error` {uri: "<prefix>.error.bad_value", message}; the row
// keeps the marker so a page can show it, and the rest of the map is intact.
function rowOf(item) {
  const row = { value: item.value, revision: item.revision };
  if (item.error) row.error = item.error;
  return row;
}

/**
 * Keep a live copy of map `map`; returns {ready, rows, revision, put, delete,
 * get, resync, stop}. `onError(err)` gets failures of subscribing and reading
 * (autobahn errors carry the etcdwamp URI in `err.error`).
 */
export function liveMap(session, { prefix = "etcd", map, onValue = () => {}, onError = () => {} } = {}) {
  if (typeof map !== "string" || !/^[a-z0-9_]+$/.test(map)) {
    throw new TypeError("liveMap needs the map's name (letters, digits, _): " + String(map));
  }
  const base = `${prefix}.map.${map}`;
  const rows = new Map(); // key -> {value, revision}
  let tombstones = new Map(); // key -> revision of its delete since the snapshot
  let snapshotRevision = null;
  let revision = null; // highest revision reflected in rows
  let pending = []; // events received while no snapshot is in place
  let reading = null; // the running read (a Promise), if any
  let again = false; // a resync arrived during that read
  let stopped = false;
  const subscriptions = [];

  const procedure = (name) => `${base}.${name}`;

  function changed() {
    if (!stopped) onValue(new Map(rows), revision);
  }

  function apply(event) {
    if (snapshotRevision === null) {
      // Kept for the read under way; with none (the last one failed), the
      // next read starts from scratch anyway.
      if (reading) pending.push(event);
      return false;
    }
    if (event.revision <= snapshotRevision) return false; // already in the snapshot
    const seen = rows.get(event.key)?.revision ?? tombstones.get(event.key) ?? 0;
    if (event.revision <= seen) return false; // re-delivered or older than what we have
    if (event.op === "delete") {
      rows.delete(event.key);
      tombstones.set(event.key, event.revision);
    } else {
      rows.set(event.key, rowOf(event));
      tombstones.delete(event.key);
    }
    if (event.revision > revision) revision = event.revision;
    return true;
  }

  function onChange(args) {
    if (stopped) return;
    if (apply(args[0])) changed();
  }

  async function readOnce() {
    // From here to the snapshot's arrival, events are buffered again: one
    // from before the resync may be stale, one after it must not be lost.
    // Events received before this call are committed before it, hence in the
    // snapshot: the buffer can start empty.
    snapshotRevision = null;
    pending = [];
    const snap = await readSnapshot();
    bump(debug.snapshots, base, 1);
    if (stopped) return;
    rows.clear();
    tombstones = new Map();
    for (const item of snap.items) rows.set(item.key, rowOf(item));
    snapshotRevision = snap.revision;
    revision = snap.revision;
    const early = pending;
    pending = [];
    early.forEach(apply);
    changed();
  }

  // The snapshot {revision, items}: pages of it (progressive results, all at
  // one revision) are gathered until the last arrives as the call's result.
  // Only autobahn's default (when.js) promises carry progressive results;
  // with ES6 ones the call asks for the snapshot whole (maps up to the
  // component's max_snapshot_rows).
  async function readSnapshot() {
    if (!progressive(session)) return session.call(procedure("get_and_watch"), []);
    const items = [];
    const call = session.call(procedure("get_and_watch"), [], {}, { receive_progress: true });
    call.progress((page) => {
      items.push(...page.items);
      bump(debug.pages, base, 1);
    });
    const last = await call;
    items.push(...last.items);
    return { revision: last.revision, items };
  }

  // One read at a time; any number of resyncs during it cost one more read.
  function read() {
    if (reading) {
      again = true;
      return reading;
    }
    reading = (async () => {
      try {
        do {
          again = false;
          await readOnce();
        } while (again && !stopped);
      } finally {
        reading = null;
      }
    })();
    return reading;
  }

  function resync() {
    if (stopped) return Promise.resolve();
    bump(debug.resyncs, base, 1);
    return read();
  }

  async function subscribe(topic, handler) {
    const sub = await session.subscribe(topic, handler);
    bump(debug.handlers, topic, 1);
    if (stopped) {
      await drop(sub);
      return;
    }
    subscriptions.push(sub);
  }

  async function drop(sub) {
    try {
      if (sub.active && session.isOpen) await session.unsubscribe(sub);
    } finally {
      bump(debug.handlers, sub.topic, -1);
    }
  }

  const ready = (async () => {
    await subscribe(`${base}.on_change`, onChange);
    await subscribe(`${base}.on_resync`, () => {
      resync().catch(onError);
    });
    if (!stopped) await read();
  })();
  ready.catch(onError);

  const call = (name, args) => session.call(procedure(name), args.map(wireValue));

  return {
    ready,
    rows,
    get revision() {
      return revision;
    },
    get: (key) => call("get", [key]),
    put: (key, value) => call("put", [key, value]),
    delete: (key) => call("delete", [key]),
    resync,
    async stop() {
      stopped = true;
      const subs = subscriptions.splice(0);
      await Promise.all(subs.map(drop));
    },
  };
}

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
// Across reconnects (to the same router or, through a balancer, another
// node): `live.detach()` when the session closes, `live.attach(next)` on the
// next join; `live.state` / `onState` say where it stands (session.js's
// followMap does this for a page).
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
// The two subscriptions are made once per session and kept while it lasts:
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
 * Keep a live copy of map `map`; returns {ready, rows, revision, state, put,
 * delete, get, resync, attach, detach, stop}. `session` (may be null: attach
 * one later) is a joined autobahn session. `onError(err)` gets failures of
 * subscribing and reading (autobahn errors carry the etcdwamp URI in
 * `err.error`); `onState(state)` every change of `live.state`: "disconnected"
 * (no session: the rows are the last ones known), "reading" (a snapshot read
 * under way), "live" (exact, following changes) or "stopped".
 *
 * Moving between nodes: `live.detach()` when the session is gone (the copy
 * keeps its rows), `live.attach(session)` with the next one, wherever it
 * landed (through a balancer, any node): the live map subscribes on it FIRST,
 * then reads the snapshot and applies the events that came meanwhile by the
 * rules above, so no change made while away is lost and none applies twice.
 * `attach` returns that read's promise; `ready` is the first one's.
 */
export function liveMap(session, { prefix = "etcd", map, onValue = () => {}, onError = () => {},
                                   onState = () => {} } = {}) {
  if (typeof map !== "string" || !/^[a-z0-9_]+$/.test(map)) {
    throw new TypeError("liveMap needs the map's name (letters, digits, _): " + String(map));
  }
  const base = `${prefix}.map.${map}`;
  const rows = new Map(); // key -> {value, revision}
  let tombstones = new Map(); // key -> revision of its delete since the snapshot
  let snapshotRevision = null;
  let revision = null; // highest revision reflected in rows
  let pending = []; // events received while no snapshot is in place
  let stopped = false;
  let state = "disconnected";
  // The session followed now, with its subscriptions and its read (one at a
  // time per session; a read left running on a dead session is ignored).
  let current = null; // {session, subscriptions, reading, again}
  let firstRead = null;
  const ready = new Promise((resolve, reject) => { firstRead = { resolve, reject }; });
  ready.catch(() => {}); // its failure reaches onError from the read itself

  const procedure = (name) => `${base}.${name}`;

  function setState(next) {
    if (next === state) return;
    state = next;
    onState(next);
  }

  function changed() {
    if (!stopped) onValue(new Map(rows), revision);
  }

  function apply(event) {
    if (snapshotRevision === null) {
      // Kept for the read under way; with none (the last one failed), the
      // next read starts from scratch anyway.
      if (current && current.reading) pending.push(event);
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

  async function readOnce(ctx) {
    // From here to the snapshot's arrival, events are buffered again: one
    // from before the resync may be stale, one after it must not be lost.
    // Events received before this call are committed before it, hence in the
    // snapshot: the buffer can start empty.
    snapshotRevision = null;
    pending = [];
    setState("reading");
    const snap = await readSnapshot(ctx.session);
    bump(debug.snapshots, base, 1);
    if (stopped || ctx !== current) return;
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
  async function readSnapshot(on) {
    if (!progressive(on)) return on.call(procedure("get_and_watch"), []);
    const items = [];
    const call = on.call(procedure("get_and_watch"), [], {}, { receive_progress: true });
    call.progress((page) => {
      items.push(...page.items);
      bump(debug.pages, base, 1);
    });
    const last = await call;
    items.push(...last.items);
    return { revision: last.revision, items };
  }

  // One read at a time on a session; any number of resyncs during it cost one more read.
  function read(ctx) {
    if (ctx.reading) {
      ctx.again = true;
      return ctx.reading;
    }
    ctx.reading = (async () => {
      try {
        do {
          ctx.again = false;
          await readOnce(ctx);
        } while (ctx.again && !stopped && ctx === current);
        if (ctx === current && !stopped) setState("live");
      } finally {
        ctx.reading = null;
      }
    })();
    return ctx.reading;
  }

  function resync() {
    if (stopped || !current) return Promise.resolve();
    bump(debug.resyncs, base, 1);
    return read(current);
  }

  async function subscribe(ctx, topic, handler) {
    const sub = await ctx.session.subscribe(topic, handler);
    bump(debug.handlers, topic, 1);
    if (stopped || ctx !== current) {
      await drop(ctx, sub);
      return;
    }
    ctx.subscriptions.push(sub);
  }

  async function drop(ctx, sub) {
    try {
      if (sub.active && ctx.session.isOpen) await ctx.session.unsubscribe(sub);
    } finally {
      bump(debug.handlers, sub.topic, -1);
    }
  }

  // Forget the current session. Its subscriptions are unsubscribed only when
  // `unsubscribe` (stop() on a live session): after a connection loss the
  // session may still look open, and a message to its closed WebSocket is a
  // console error.
  function leave(unsubscribe) {
    const ctx = current;
    if (!ctx) return Promise.resolve();
    current = null;
    snapshotRevision = null; // nothing to follow until the next snapshot
    pending = [];
    if (!stopped) setState("disconnected");
    const subs = ctx.subscriptions.splice(0);
    if (unsubscribe) return Promise.all(subs.map((sub) => drop(ctx, sub)));
    for (const sub of subs) bump(debug.handlers, sub.topic, -1);
    return Promise.resolve();
  }

  /** The session is gone (closed or lost): keep the rows, follow nothing until attach(). */
  function detach() {
    return leave(false);
  }

  function attach(next) {
    if (stopped) return Promise.reject(new Error("this live map was stopped"));
    leave(true); // a session still followed stays open: take its handlers off it
    const ctx = { session: next, subscriptions: [], reading: null, again: false };
    current = ctx;
    setState("reading");
    // The handlers belong to this session: a late event of an older one is dropped.
    const onChange = (args) => {
      if (!stopped && ctx === current && apply(args[0])) changed();
    };
    const onResync = () => {
      if (ctx === current) resync().catch(onError);
    };
    const done = (async () => {
      await subscribe(ctx, `${base}.on_change`, onChange);
      await subscribe(ctx, `${base}.on_resync`, onResync);
      if (!stopped && ctx === current) await read(ctx);
    })();
    done.then(() => firstRead.resolve(), (err) => {
      if (ctx === current) firstRead.reject(err);
    });
    done.catch((err) => {
      if (ctx === current) onError(err);
    });
    return done;
  }

  if (session) attach(session).catch(() => {});

  const call = (name, args) => {
    if (!current) return Promise.reject(new Error("not connected: the live map has no session"));
    return current.session.call(procedure(name), args.map(wireValue));
  };

  return {
    ready,
    rows,
    get revision() {
      return revision;
    },
    get state() {
      return state;
    },
    get: (key) => call("get", [key]),
    put: (key, value) => call("put", [key, value]),
    delete: (key) => call("delete", [key]),
    resync,
    attach,
    detach,
    async stop() {
      stopped = true;
      const left = leave(true);
      setState("stopped");
      await left;
    },
  };
}

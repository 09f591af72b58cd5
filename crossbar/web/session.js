// The demo pages' WAMP connection: anonymous (the router's "guest" role, whose
// rights the Crossbar config limits to the demo's maps), JSON serializer,
// reconnecting forever. No secret is ever sent from a page.
/* global autobahn */
import { liveMap } from "./livemap.js";

/**
 * Open the connection to this page's own router; `onJoin(session)` runs on
 * every (re)join and may return a function that is called when that session
 * ends; `onStatus(text)` hears about disconnects.
 */
export function connectAnonymously({ onJoin, onStatus = () => {} }) {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const connection = new autobahn.Connection({
    url,
    realm: "realm1",
    // JSON on purpose: the pages must work where numbers are IEEE doubles (see livemap.js).
    serializers: [new autobahn.serializer.JSONSerializer()],
    max_retries: -1,
  });
  let ended = null;
  connection.onopen = (session, details) => {
    // Who the router says we are (authrole, authmethod), for tests and debugging.
    window.wamp = { session, authrole: details.authrole, authmethod: details.authmethod };
    ended = onJoin(session) || null;
  };
  connection.onclose = (reason) => {
    if (ended) ended();
    ended = null;
    onStatus("disconnected (" + reason + "), retrying…");
  };
  connection.open();
  return connection;
}

/**
 * A page's one live map, kept across reconnects: a fresh `liveMap` of `map`
 * on every join (stopped when that session ends), handed to `onLive(live)`;
 * `<body data-ready>` is "true" once its first read is in. `connection` (by
 * default `status`) shows the connection's state, also as its `data-state`
 * ("connected" or "disconnected"); `onJoin(session)` runs on every join and may
 * return a function called when that session ends.
 */
export function followMap({ map, onValue, onError, onLive, status, connection = status,
                            onJoin = () => null }) {
  return connectAnonymously({
    onStatus: (text) => {
      document.body.dataset.ready = "false";
      connection.dataset.state = "disconnected";
      connection.textContent = text;
    },
    onJoin: (session) => {
      connection.dataset.state = "connected";
      connection.textContent = "connected";
      const live = liveMap(session, { map, onValue, onError });
      onLive(live);
      live.ready.then(() => { document.body.dataset.ready = "true"; }, () => {});
      const left = onJoin(session);
      return () => {
        live.stop();
        if (left) left();
      };
    },
  });
}

/** An autobahn error (URI and arguments) or any other failure, as one line. */
export function describeError(err) {
  if (err && err.error) return err.error + ": " + (err.args || []).join(" ");
  return String(err);
}

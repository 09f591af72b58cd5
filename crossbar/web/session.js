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
 * A page's one live map, kept across reconnects: made once (handed to
 * `onLive(live)`), attached to every session the connection joins (through
 * the page's URL: behind a balancer, whichever node answers) and detached when
 * it ends, so the rows stay on screen while away and resume exactly (see
 * livemap.js). `<body data-ready>` is "true" while the copy is exact and
 * following ("live"). `connection` (by default `status`) shows the
 * connection's state, also as its `data-state` ("connected" or
 * "disconnected"), and the live map's as its `data-live` ("disconnected",
 * "reading", "live"); `onJoin(session)` runs on every join and may return a
 * function called when that session ends.
 */
export function followMap({ map, onValue, onError, onLive, status, connection = status,
                            onJoin = () => null }) {
  const live = liveMap(null, {
    map,
    onValue,
    onError,
    onState: (state) => {
      document.body.dataset.ready = state === "live" ? "true" : "false";
      connection.dataset.live = state;
    },
  });
  onLive(live);
  return connectAnonymously({
    onStatus: (text) => {
      connection.dataset.state = "disconnected";
      connection.textContent = text;
    },
    onJoin: (session) => {
      connection.dataset.state = "connected";
      connection.textContent = "connected";
      live.attach(session).catch(() => {}); // its failures reach onError
      const left = onJoin(session);
      return () => {
        live.detach();
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

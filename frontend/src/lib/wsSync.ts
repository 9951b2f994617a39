// /sync over WSPR's WebSocket stream (docs/websocket.md, `org.wspr.websocket`), as a `fetchFn` for
// matrix-js-sdk: the SDK keeps its own sync loop, token store and crypto, and its GET /sync requests
// are answered from the socket's frames (each frame's `data` is a /sync response). Every other request,
// and any /sync the socket cannot answer, goes to the network unchanged, so a server without the stream
// (Synapse) sees exactly the HTTP /sync it always did.
//
// The socket is only ever opened from the `next_batch` of a /sync that succeeded over HTTP: that proves
// the server is reachable and the token good, and keeps one rule for start-up, reloads, reconnects and
// fallbacks: whenever the SDK asks for something the socket is not positioned to give (another since,
// another filter, full_state, a dead socket), that request goes over HTTP and a new socket starts from
// its answer.

const WS_PATH = "/_matrix/client/unstable/org.wspr.websocket";
const SYNC_PATH = /\/_matrix\/client\/(v3|r0)\/sync$/;
export const FEATURE = "org.wspr.websocket";

/** No `hello` this long after opening: the socket (or a proxy in front of it) is not working. */
const OPEN_TIMEOUT_MS = 10000;
/** After a `ping` on waking up or coming back online, a socket with no `pong` by then is dead. */
const PONG_TIMEOUT_MS = 5000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function eventsOf(section: unknown): unknown[] {
  return isObject(section) && Array.isArray(section.events) ? section.events : [];
}

function withEvents(a: unknown, b: unknown): Json {
  return { ...(isObject(a) ? a : {}), ...(isObject(b) ? b : {}), events: [...eventsOf(a), ...eventsOf(b)] };
}

const ROOM_KINDS = ["join", "invite", "leave", "knock"] as const;
/** Totals the SDK takes from the newest response as they are: absent there means "none" for these. */
const THREAD_COUNTS = ["unread_thread_notifications", "org.matrix.msc3773.unread_thread_notifications"];

function roomsOf(sync: Json): Record<(typeof ROOM_KINDS)[number], Record<string, Json>> {
  const rooms = isObject(sync.rooms) ? sync.rooms : {};
  const pick = (k: string) => (isObject(rooms[k]) ? (rooms[k] as Record<string, Json>) : {});
  return { join: pick("join"), invite: pick("invite"), leave: pick("leave"), knock: pick("knock") };
}

/** A joined or left room's section of `b` appended to `a`'s, or null where order would be lost. */
function mergeRoom(a: Json, b: Json): Json | null {
  const timeline = isObject(b.timeline) ? b.timeline : {};
  // a gap (limited) or state between the two timelines can't be expressed in one response
  if (timeline.limited || eventsOf(b.state).length) return null;
  const merged: Json = { ...a, ...b };
  merged.timeline = { ...(isObject(a.timeline) ? a.timeline : {}), events: [...eventsOf(a.timeline), ...eventsOf(b.timeline)] };
  if ("state" in a) merged.state = a.state;
  for (const key of ["ephemeral", "account_data"]) if (key in a || key in b) merged[key] = withEvents(a[key], b[key]);
  if (isObject(a.summary) || isObject(b.summary)) merged.summary = { ...(isObject(a.summary) ? a.summary : {}), ...(isObject(b.summary) ? b.summary : {}) };
  for (const key of THREAD_COUNTS) if (!(key in b)) delete merged[key];
  return merged;
}

/**
 * One /sync response equal to applying `a` then `b` (consecutive frames: `b` continues from `a`'s
 * next_batch), or null when that is not safe to express as one response: then they are delivered one
 * at a time, as the frames came. Merging matters because the stream sends a frame per server wake-up
 * where a long-poll answers with everything since the last request; the app (opening a room at its
 * read marker) expects a burst of messages to arrive as a /sync long-poll delivers it, not one by one.
 */
export function mergeSyncResponses(a: Json, b: Json): Json | null {
  const ra = roomsOf(a);
  const rb = roomsOf(b);
  const rooms: Record<string, Record<string, Json>> = { join: { ...ra.join }, invite: { ...ra.invite }, leave: { ...ra.leave }, knock: { ...ra.knock } };
  for (const kind of ROOM_KINDS) {
    for (const [roomId, section] of Object.entries(rb[kind])) {
      const other = ROOM_KINDS.filter((k) => k !== kind && roomId in ra[k]);
      // a membership change between the frames: the SDK orders sections by kind, not by time
      if (other.length) return null;
      const before = ra[kind][roomId];
      if (!before) {
        rooms[kind][roomId] = section;
      } else if (kind === "join" || kind === "leave") {
        const m = mergeRoom(before, section);
        if (!m) return null;
        rooms[kind][roomId] = m;
      } else {
        return null;
      }
    }
  }
  const merged: Json = { ...a, ...b, rooms };
  for (const key of ["presence", "account_data", "to_device"]) if (key in a || key in b) merged[key] = withEvents(a[key], b[key]);
  if (isObject(a.device_lists) || isObject(b.device_lists)) {
    const changed = new Set<string>();
    const left = new Set<string>();
    for (const dl of [a.device_lists, b.device_lists]) {
      if (!isObject(dl)) continue;
      for (const u of Array.isArray(dl.changed) ? (dl.changed as string[]) : []) {
        changed.add(u);
        left.delete(u);
      }
      for (const u of Array.isArray(dl.left) ? (dl.left as string[]) : []) {
        left.add(u);
        changed.delete(u);
      }
    }
    merged.device_lists = { changed: [...changed], left: [...left] };
  }
  return merged;
}

export function emptySync(since: string): Json {
  return {
    next_batch: since,
    rooms: { join: {}, invite: {}, leave: {}, knock: {} },
    account_data: { events: [] },
    presence: { events: [] },
    to_device: { events: [] },
    device_lists: { changed: [], left: [] },
  };
}

function jsonResponse(body: unknown): Response {
  return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
}

function bearer(headers: HeadersInit | undefined): string | null {
  let value: string | null | undefined;
  if (headers instanceof Headers) value = headers.get("Authorization");
  else if (Array.isArray(headers)) value = headers.find(([k]) => k.toLowerCase() === "authorization")?.[1];
  else if (headers) value = headers.Authorization ?? headers.authorization;
  return value?.startsWith("Bearer ") ? value.slice(7) : null;
}

function abortError(): DOMException {
  return new DOMException("The operation was aborted.", "AbortError");
}

interface Frame {
  token: string;
  data: Json;
}

interface Socket {
  ws: WebSocket;
  accessToken: string;
  filter: string | null;
  setPresence: string | null;
  /** the token the SDK is at on this socket: the subscription's since, then each answer's next_batch */
  position: string;
  /** the last token handed to the SDK, acknowledged when the SDK asks from it (it processed it) */
  unacked: string | null;
  frames: Frame[];
  hello: boolean;
  closed: boolean;
  heartbeatMs: number;
  lastHeard: number;
  /** frames received so far (any kind) */
  heard: number;
  wake: (() => void) | null;
  timers: Set<ReturnType<typeof setTimeout>>;
  pingId: number;
}

export interface WsSyncOptions {
  /** where requests the socket does not answer go */
  fetchFn?: typeof fetch;
  WebSocketImpl?: typeof WebSocket;
  log?: (message: string) => void;
}

export interface WsSyncStats {
  opens: number;
  frames: number;
  /** /sync requests answered from the socket */
  streamed: number;
  /** /sync requests that went over HTTP */
  httpSyncs: number;
}

export interface WsSyncFetch {
  (input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** checks that the socket is alive (after sleep, or when the network comes back) */
  check: () => void;
  /** closes the socket for good (sign-out) */
  close: () => void;
  stats: WsSyncStats;
}

export function webSocketSyncFetch(baseUrl: string, opts: WsSyncOptions = {}): WsSyncFetch {
  const baseFetch = opts.fetchFn ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const WS = opts.WebSocketImpl ?? (typeof WebSocket === "undefined" ? undefined : WebSocket);
  const log = opts.log ?? (() => {});
  const root = baseUrl.replace(/\/+$/, "");
  const wsUrl = root.replace(/^http/, "ws") + WS_PATH;
  const stats: WsSyncStats = { opens: 0, frames: 0, streamed: 0, httpSyncs: 0 };
  let socket: Socket | null = null;
  /** the next_batch of the last /sync answered over HTTP: where the next socket may start */
  let resumeFrom: string | null = null;
  let supported: Promise<boolean> | null = null;
  let disabled = !WS;
  let failures = 0;
  let retryAt = 0;

  function discover(): Promise<boolean> {
    if (!supported) {
      const p = baseFetch(`${root}/_matrix/client/versions`)
        .then((r) => (r.ok ? (r.json() as Promise<Json>) : Promise.reject(new Error(`versions: ${r.status}`))))
        .then((v) => isObject(v.unstable_features) && v.unstable_features[FEATURE] === true);
      supported = p;
      // a failure (offline) is asked again next time; an answer is kept
      p.catch(() => {
        if (supported === p) supported = null;
      });
    }
    return supported.catch(() => false);
  }

  function send(s: Socket, frame: Json): void {
    // before it is open, onopen sends what is needed (auth with the current token); after, it is dead
    if (s.ws.readyState === 1 /* OPEN */) s.ws.send(JSON.stringify(frame));
  }

  function later(s: Socket, ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      s.timers.delete(t);
      fn();
    }, ms);
    s.timers.add(t);
  }

  function drop(s: Socket, code = 1000): void {
    if (s.closed) return;
    s.closed = true;
    for (const t of s.timers) clearTimeout(t);
    try {
      s.ws.close(code);
    } catch {
      /* already closing */
    }
    if (socket === s) socket = null;
    s.wake?.();
  }

  function failed(reason: string): void {
    failures++;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (failures - 1));
    retryAt = Date.now() + delay * (0.5 + Math.random() / 2);
    log(`sync stream failed (${reason}): HTTP /sync for ${Math.round((retryAt - Date.now()) / 1000)} s`);
  }

  function open(accessToken: string, since: string, filter: string | null, setPresence: string | null): Socket | null {
    if (!WS) return null;
    const ws = new WS(wsUrl);
    const s: Socket = { ws, accessToken, filter, setPresence, position: since, unacked: null, frames: [], hello: false, closed: false, heartbeatMs: 30000, lastHeard: Date.now(), heard: 0, wake: null, timers: new Set(), pingId: 0 };
    socket = s;
    stats.opens++;
    const wake = () => {
      const w = s.wake;
      s.wake = null;
      w?.();
    };
    later(s, OPEN_TIMEOUT_MS, () => {
      if (!s.hello && !s.closed) {
        failed("no hello");
        drop(s);
      }
    });
    ws.onopen = () => {
      // browsers can't set headers on a WebSocket: the token goes in the first frame, not the URL
      ws.send(JSON.stringify({ type: "auth", access_token: s.accessToken }));
      const subscribe: Json = { type: "subscribe", mode: "sync", since };
      if (filter !== null) subscribe.filter = filter;
      if (setPresence !== null) subscribe.set_presence = setPresence;
      ws.send(JSON.stringify(subscribe));
    };
    ws.onmessage = (msg: MessageEvent) => {
      if (s.closed) return;
      s.lastHeard = Date.now();
      s.heard++;
      let frame: Json;
      try {
        frame = JSON.parse(String(msg.data)) as Json;
      } catch {
        return;
      }
      if (frame.type === "hello") {
        s.hello = true;
        if (typeof frame.heartbeat_ms === "number" && frame.heartbeat_ms > 0) s.heartbeatMs = frame.heartbeat_ms;
        watchdog(s);
        log("sync stream open");
      } else if (frame.type === "sync" && typeof frame.token === "string" && isObject(frame.data)) {
        failures = 0;
        stats.frames++;
        s.frames.push({ token: frame.token, data: frame.data });
      } else if (frame.type === "idle") {
        failures = 0;
      } else if (frame.type === "error") {
        log(`sync stream error ${String(frame.errcode)}: ${String(frame.error)}`);
      }
      wake();
    };
    ws.onclose = (ev: CloseEvent) => {
      if (s.closed) return;
      log(`sync stream closed (${ev.code})`);
      // a client bug or another user's token: this session stays on HTTP /sync
      if (ev.code === 4000 || ev.code === 4003) disabled = true;
      // a restart (1001) or a broken connection (1006) after a working start needs no back-off: the
      // socket is only reopened after an HTTP /sync succeeds
      else if (!s.hello || ![1001, 1006].includes(ev.code)) failed(`close ${ev.code}`);
      drop(s);
    };
    return s;
  }

  /** Browsers can't see protocol pings; the server sends `idle` frames instead. Silence for two of them: dead. */
  function watchdog(s: Socket): void {
    const tick = () => {
      if (s.closed) return;
      if (Date.now() - s.lastHeard > 2 * s.heartbeatMs) {
        log("sync stream silent: reconnecting");
        drop(s);
        return;
      }
      later(s, s.heartbeatMs / 2, tick);
    };
    later(s, s.heartbeatMs / 2, tick);
  }

  function check(): void {
    const s = socket;
    if (!s || s.closed || !s.hello) return;
    const id = `check-${++s.pingId}`;
    const heard = s.heard;
    send(s, { type: "ping", id });
    // any frame counts as an answer, the pong included
    later(s, PONG_TIMEOUT_MS, () => {
      if (!s.closed && s.heard === heard) {
        log("sync stream: no pong, reconnecting");
        drop(s);
      }
    });
  }

  /** Frames queued now, merged as far as they can be. */
  function takeFrames(s: Socket): Json {
    let first = s.frames.shift()!;
    let data = first.data;
    while (s.frames.length) {
      const merged = mergeSyncResponses(data, s.frames[0].data);
      if (!merged) break;
      data = merged;
      first = s.frames.shift()!;
    }
    s.position = first.token;
    s.unacked = first.token;
    return { ...data, next_batch: first.token };
  }

  /** Answers a /sync from the socket, or null: the socket died, that request goes over HTTP. */
  async function fromSocket(s: Socket, since: string, timeoutMs: number, signal: AbortSignal | null | undefined): Promise<Response | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) throw abortError();
      if (s.frames.length) {
        stats.streamed++;
        return jsonResponse(takeFrames(s));
      }
      if (s.closed) return null;
      const remaining = deadline - Date.now();
      // not before hello: till then the subscription may still be refused
      if (s.hello && remaining <= 0) {
        stats.streamed++;
        return jsonResponse(emptySync(since));
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(done, Math.max(remaining, 50));
        function done() {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (s.wake === done) s.wake = null;
          resolve();
        }
        function onAbort() {
          done();
          reject(abortError());
        }
        s.wake = done;
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  async function overHttp(input: RequestInfo | URL, init: RequestInit | undefined, params: URLSearchParams): Promise<Response> {
    stats.httpSyncs++;
    resumeFrom = null;
    const wanted = !disabled && !!bearer(init?.headers) && params.get("full_state") !== "true";
    const [res, ok] = await Promise.all([baseFetch(input, init), wanted ? discover() : Promise.resolve(false)]);
    if (ok && res.ok) {
      try {
        const body = (await res.clone().json()) as Json;
        if (typeof body.next_batch === "string" && body.next_batch) resumeFrom = body.next_batch;
      } catch {
        /* not JSON: the SDK will report it */
      }
    }
    return res;
  }

  async function sync(input: RequestInfo | URL, init: RequestInit | undefined, url: URL): Promise<Response> {
    const params = url.searchParams;
    const since = params.get("since");
    const token = bearer(init?.headers);
    const filter = params.get("filter");
    const setPresence = params.get("set_presence");
    let s = socket;
    if (s && (s.closed || s.position !== since)) {
      drop(s); // positioned elsewhere: the SDK went back (a retry, a reload)
      s = null;
    }
    if (since === null || params.get("full_state") === "true" || !token) return overHttp(input, init, params);
    if (s && (s.filter !== filter || s.setPresence !== setPresence)) {
      // same position, other parameters (presence changed): a sync-mode socket subscribes once
      drop(s);
      s = null;
      resumeFrom = since;
    }
    if (!s) {
      // Opened on the request after an HTTP /sync, not with it: that request has the parameters the
      // SDK keeps using (its first /sync has the filter inline, later ones the filter's id).
      if (since !== resumeFrom || disabled || Date.now() < retryAt) return overHttp(input, init, params);
      resumeFrom = null;
      s = open(token, since, filter, setPresence);
      if (!s) return overHttp(input, init, params);
    }
    if (token !== s.accessToken) {
      // a refreshed access token: the socket stays, the server checks the new one
      s.accessToken = token;
      send(s, { type: "auth", access_token: token });
    }
    if (s.unacked === since) {
      // asking from it means the SDK processed it: only now may the server drop its to-device messages
      send(s, { type: "ack", token: since });
      s.unacked = null;
    }
    const answer = await fromSocket(s, since, Number(params.get("timeout") ?? 0) || 0, init?.signal);
    return answer ?? overHttp(input, init, params);
  }

  const fetchWithStream = ((input: RequestInfo | URL, init?: RequestInit) => {
    const href = input instanceof Request ? input.url : String(input);
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    if (method === "GET" && !(input instanceof Request)) {
      const url = new URL(href, typeof location === "undefined" ? undefined : location.href);
      if (SYNC_PATH.test(url.pathname)) return sync(input, init, url);
    }
    return baseFetch(input, init);
  }) as WsSyncFetch;
  fetchWithStream.check = check;
  fetchWithStream.close = () => {
    disabled = true;
    if (socket) drop(socket);
  };
  fetchWithStream.stats = stats;
  return fetchWithStream;
}

/** Checks the socket when the page wakes up or the network comes back. Returns the undo. */
export function watchPage(f: WsSyncFetch): () => void {
  if (typeof window === "undefined" || typeof document === "undefined") return () => {};
  const onVisible = () => document.visibilityState === "visible" && f.check();
  const onOnline = () => f.check();
  document.addEventListener("visibilitychange", onVisible);
  document.addEventListener("resume", onOnline);
  window.addEventListener("online", onOnline);
  return () => {
    document.removeEventListener("visibilitychange", onVisible);
    document.removeEventListener("resume", onOnline);
    window.removeEventListener("online", onOnline);
  };
}

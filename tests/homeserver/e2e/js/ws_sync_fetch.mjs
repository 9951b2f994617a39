// A fetch() for matrix-js-sdk (createClient({ fetchFn })) that answers the SDK's GET /sync
// long-polls from WSPR's WebSocket stream (docs/websocket.md) and passes every other
// request to the real fetch. The SDK keeps its own sync loop, token handling and crypto:
// a /sync?since=T is answered with the next frame continuing from T, and asking from T
// acknowledges the frame that brought T (the SDK processed it), which is when the server
// may delete its to-device messages. Anything unexpected (another since, a closed socket)
// reconnects from the since asked for. Works in browsers and in Node 22+ (global WebSocket).
//
//   const client = sdk.createClient({ baseUrl, accessToken, userId, deviceId,
//                                     fetchFn: webSocketSyncFetch(baseUrl) });
//
// Use it only where GET /_matrix/client/versions lists "org.wspr.websocket": true.

const WS_PATH = "/_matrix/client/unstable/org.wspr.websocket";
const SYNC_PATH = /\/_matrix\/client\/(v3|r0)\/sync$/;

function emptySync(since) {
  return {
    next_batch: since,
    rooms: { join: {}, invite: {}, leave: {}, knock: {} },
    account_data: { events: [] },
    presence: { events: [] },
    to_device: { events: [] },
    device_lists: { changed: [], left: [] },
  };
}

function jsonResponse(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function bearer(headers) {
  const value = headers instanceof Headers ? headers.get("Authorization") : headers?.Authorization ?? headers?.authorization;
  return value?.startsWith("Bearer ") ? value.slice(7) : null;
}

export function webSocketSyncFetch(baseUrl, { fetchFn = globalThis.fetch, onEvent = () => {} } = {}) {
  const wsUrl = baseUrl.replace(/^http/, "ws").replace(/\/$/, "") + WS_PATH;
  let socket = null; // { ws, frames: [], waiter, error, closed, lastToken }

  function open(token, params) {
    close();
    const ws = new WebSocket(wsUrl);
    const state = { ws, frames: [], waiter: null, error: null, closed: false, lastToken: params.since ?? null };
    const wake = () => {
      const w = state.waiter;
      state.waiter = null;
      w?.();
    };
    ws.onopen = () => {
      // The token goes in a frame, not the URL (browsers cannot set headers here).
      ws.send(JSON.stringify({ type: "auth", access_token: token }));
      const subscribe = { type: "subscribe", mode: "sync" };
      for (const key of ["since", "filter", "set_presence"]) if (params[key]) subscribe[key] = params[key];
      if (params.full_state === "true") subscribe.full_state = true;
      ws.send(JSON.stringify(subscribe));
      onEvent("open");
    };
    ws.onmessage = (msg) => {
      const frame = JSON.parse(msg.data);
      if (frame.type === "sync") state.frames.push(frame);
      else if (frame.type === "error") state.error = frame;
      wake();
    };
    ws.onclose = (ev) => {
      state.closed = true;
      state.closeCode = ev.code;
      onEvent("close", ev.code);
      wake();
    };
    socket = state;
    return state;
  }

  function close() {
    if (socket && !socket.closed) socket.ws.close(1000);
    socket = null;
  }

  async function sync(url, init) {
    const params = Object.fromEntries(url.searchParams.entries());
    const since = params.since ?? null;
    const timeout = Number(params.timeout ?? 0);
    let state = socket;
    if (!state || state.closed || state.lastToken !== since) {
      const token = bearer(init?.headers);
      if (!token) return fetchFn(url, init);
      state = open(token, params);
    } else if (since !== null) {
      // The SDK asks from the last frame's token: it processed that frame.
      state.ws.send(JSON.stringify({ type: "ack", token: since }));
    }
    const deadline = Date.now() + timeout;
    for (;;) {
      if (state.frames.length) {
        const frame = state.frames.shift();
        state.lastToken = frame.token;
        return jsonResponse(200, frame.data);
      }
      if (state.error) {
        const { type, ...body } = state.error;
        close();
        return jsonResponse(body.errcode === "M_UNKNOWN_TOKEN" || body.errcode === "M_MISSING_TOKEN" ? 401 : 400, body);
      }
      if (state.closed) {
        socket = null;
        throw new TypeError(`WebSocket stream closed (${state.closeCode})`); // as fetch fails: the SDK retries
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0 && state.ws.readyState === WebSocket.OPEN && since !== null) {
        return jsonResponse(200, emptySync(since));
      }
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, Math.max(remaining, 50));
        state.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
        if (init?.signal?.aborted) reject(new DOMException("The operation was aborted.", "AbortError"));
        init?.signal?.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            reject(new DOMException("The operation was aborted.", "AbortError"));
          },
          { once: true },
        );
      });
    }
  }

  const fetchWithStream = (resource, init) => {
    const url = new URL(resource instanceof Request ? resource.url : String(resource));
    if ((init?.method ?? "GET") === "GET" && SYNC_PATH.test(url.pathname)) return sync(url, init);
    return fetchFn(resource, init);
  };
  fetchWithStream.close = close;
  return fetchWithStream;
}

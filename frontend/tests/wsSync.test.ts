import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { mergeSyncResponses, webSocketSyncFetch, type WsSyncFetch } from "../src/lib/wsSync";

const BASE = "https://hs.example";
const SYNC = `${BASE}/_matrix/client/v3/sync`;
const AUTH = { Authorization: "Bearer tok" };

type Json = Record<string, unknown>;

/** A WebSocket the test drives: it opens, receives frames and closes when told. */
class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: Json[] = [];
  closedWith: number | null = null;
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  constructor(public url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as Json);
  }
  close(code?: number) {
    this.readyState = 3;
    this.closedWith = code ?? 1005;
  }
  accept(heartbeatMs = 30000) {
    this.readyState = 1;
    this.onopen?.();
    this.receive({ type: "hello", version: 1, user_id: "@a:hs", device_id: "D", heartbeat_ms: heartbeatMs, max_unacked_frames: 32, max_unacked_bytes: 1 << 20 });
  }
  receive(frame: Json) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  frame(token: string, data: Json = {}) {
    this.receive({ type: "sync", token, data: { next_batch: token, ...data } });
  }
  serverClose(code: number) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  sentOf(type: string) {
    return this.sent.filter((f) => f.type === type);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function timeline(roomId: string, bodies: string[], extra: Json = {}): Json {
  return { rooms: { join: { [roomId]: { timeline: { events: bodies.map((b) => ({ type: "m.room.message", content: { body: b } })), limited: false, ...extra } } } } };
}

function bodiesOf(sync: Json, roomId: string): string[] {
  const room = (sync.rooms as { join: Record<string, { timeline: { events: { content: { body: string } }[] } }> }).join[roomId];
  return room.timeline.events.map((e) => e.content.body);
}

let httpSyncs: URL[];
let feature: boolean;
let f: WsSyncFetch;

/** The network: /versions (with or without the stream) and /sync answering next_batch h1, h2, ... */
function baseFetch() {
  return vi.fn(async (input: RequestInfo | URL) => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.pathname.endsWith("/versions")) return Response.json({ versions: ["v1.11"], unstable_features: { "org.wspr.websocket": feature } });
    if (url.pathname.endsWith("/sync")) {
      httpSyncs.push(url);
      return Response.json({ next_batch: `h${httpSyncs.length}`, rooms: { join: {} } });
    }
    return new Response("{}", { status: 404 });
  });
}

function get(params: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  return f(`${SYNC}?${new URLSearchParams(params).toString()}`, { method: "GET", headers: AUTH, signal });
}

async function body(res: Promise<Response>): Promise<Json> {
  return (await (await res).json()) as Json;
}

/** The initial /sync over HTTP, then the request that opens the socket (still pending). */
async function connected(params: Record<string, string> = { filter: "1", timeout: "30000" }) {
  expect((await body(get({ filter: "1", timeout: "0" }))).next_batch).toBe("h1");
  const pending = get({ ...params, since: "h1" });
  await tick();
  const ws = FakeSocket.all.at(-1)!;
  ws.accept();
  return { ws, pending };
}

beforeEach(() => {
  FakeSocket.all = [];
  httpSyncs = [];
  feature = true;
  f = webSocketSyncFetch(BASE, { fetchFn: baseFetch(), WebSocketImpl: FakeSocket as unknown as typeof WebSocket });
});

afterEach(() => {
  f.close();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("webSocketSyncFetch", () => {
  it("answers /sync from the socket's frames after one HTTP /sync, and acknowledges what the SDK processed", async () => {
    const { ws, pending } = await connected();
    expect(ws.url).toBe("wss://hs.example/_matrix/client/unstable/org.wspr.websocket");
    expect(ws.sent[0]).toEqual({ type: "auth", access_token: "tok" });
    expect(ws.sent[1]).toEqual({ type: "subscribe", mode: "sync", since: "h1", filter: "1" });
    ws.frame("s2", timeline("!r", ["hello"]));
    const first = await body(pending);
    expect(first.next_batch).toBe("s2");
    expect(bodiesOf(first, "!r")).toEqual(["hello"]);
    expect(ws.sentOf("ack")).toEqual([]); // not processed yet
    const next = get({ filter: "1", timeout: "30000", since: "s2" });
    await tick();
    expect(ws.sentOf("ack")).toEqual([{ type: "ack", token: "s2" }]);
    ws.frame("s3", timeline("!r", ["again"]));
    expect(bodiesOf(await body(next), "!r")).toEqual(["again"]);
    expect(httpSyncs).toHaveLength(1);
    expect(f.stats).toMatchObject({ opens: 1, streamed: 2, httpSyncs: 1 });
  });

  it("passes other requests through, and never opens a socket where the server has no stream", async () => {
    feature = false;
    expect((await f(`${BASE}/_matrix/client/versions`)).ok).toBe(true);
    await body(get({ filter: "1" }));
    await body(get({ filter: "1", since: "h1", timeout: "0" }));
    await body(get({ filter: "1", since: "h2", timeout: "0" }));
    expect(FakeSocket.all).toHaveLength(0);
    expect(httpSyncs.map((u) => u.searchParams.get("since"))).toEqual([null, "h1", "h2"]);
  });

  it("answers with every frame queued, merged into one response", async () => {
    const { ws, pending } = await connected();
    ws.frame("s2", timeline("!r", ["1"]));
    await body(pending);
    ws.frame("s3", timeline("!r", ["2"]));
    ws.frame("s4", { ...timeline("!r", ["3"]), to_device: { events: [{ type: "x" }] } });
    ws.frame("s5", timeline("!other", ["elsewhere"]));
    const merged = await body(get({ filter: "1", timeout: "30000", since: "s2" }));
    expect(merged.next_batch).toBe("s5");
    expect(bodiesOf(merged, "!r")).toEqual(["2", "3"]);
    expect(bodiesOf(merged, "!other")).toEqual(["elsewhere"]);
    expect(merged.to_device).toEqual({ events: [{ type: "x" }] });
    void get({ filter: "1", timeout: "30000", since: "s5" });
    await tick();
    expect(ws.sentOf("ack").at(-1)).toEqual({ type: "ack", token: "s5" });
  });

  it("delivers a gap (a limited timeline) as its own response", async () => {
    const { ws, pending } = await connected();
    ws.frame("s2", timeline("!r", ["1"]));
    ws.frame("s3", timeline("!r", ["50"], { limited: true, prev_batch: "p" }));
    expect((await body(pending)).next_batch).toBe("s2");
    const gap = await body(get({ filter: "1", timeout: "30000", since: "s2" }));
    expect(gap.next_batch).toBe("s3");
    expect(bodiesOf(gap, "!r")).toEqual(["50"]);
  });

  it("answers an empty /sync at the same token when the long-poll times out", async () => {
    const { pending } = await connected({ filter: "1", timeout: "60" });
    const empty = await body(pending);
    expect(empty.next_batch).toBe("h1");
    expect(empty.rooms).toEqual({ join: {}, invite: {}, leave: {}, knock: {} });
  });

  it("goes over HTTP for a since the socket is not at, and starts the next socket from that answer", async () => {
    const { ws, pending } = await connected();
    ws.frame("s2", timeline("!r", ["1"]));
    await body(pending);
    // the SDK retries from an older token (its processing failed, or a reload from its store)
    expect((await body(get({ filter: "1", timeout: "0", since: "h1" }))).next_batch).toBe("h2");
    expect(ws.closedWith).toBe(1000);
    expect(httpSyncs.at(-1)!.searchParams.get("since")).toBe("h1");
    const again = get({ filter: "1", timeout: "30000", since: "h2" });
    await tick();
    const ws2 = FakeSocket.all.at(-1)!;
    expect(ws2).not.toBe(ws);
    ws2.accept();
    expect(ws2.sentOf("subscribe")[0]).toMatchObject({ since: "h2" });
    ws2.frame("s9", timeline("!r", ["2"]));
    expect((await body(again)).next_batch).toBe("s9");
  });

  it("goes over HTTP for full_state and the initial /sync", async () => {
    await connected();
    await body(get({ filter: "1", since: "h1", full_state: "true", timeout: "0" }));
    expect(httpSyncs.at(-1)!.searchParams.get("full_state")).toBe("true");
  });

  it("a socket that dies while the SDK waits: that /sync goes over HTTP, and a new socket continues at once", async () => {
    const { ws, pending } = await connected();
    ws.serverClose(1001); // the server restarts
    expect((await body(pending)).next_batch).toBe("h2");
    expect(httpSyncs.at(-1)!.searchParams.get("since")).toBe("h1");
    const next = get({ filter: "1", timeout: "30000", since: "h2" });
    await tick();
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.all[1].accept();
    FakeSocket.all[1].frame("s3", timeline("!r", ["after"]));
    expect(bodiesOf(await body(next), "!r")).toEqual(["after"]);
  });

  it("a socket that cannot connect: HTTP /sync, and the socket is tried again after a back-off", async () => {
    let now = 1_000_000;
    vi.spyOn(Date, "now").mockImplementation(() => now);
    await body(get({ filter: "1", timeout: "0" }));
    const pending = get({ filter: "1", timeout: "30000", since: "h1" });
    await tick();
    FakeSocket.all[0].serverClose(1006); // refused (a proxy without WebSocket upgrades)
    expect((await body(pending)).next_batch).toBe("h2");
    // within the back-off: HTTP long-polls
    await body(get({ filter: "1", timeout: "30000", since: "h2" }));
    expect(FakeSocket.all).toHaveLength(1);
    now += 60_000;
    void get({ filter: "1", timeout: "30000", since: "h3" });
    await tick();
    expect(FakeSocket.all).toHaveLength(2);
  });

  it("a bad-frame close (a client bug) keeps the session on HTTP /sync", async () => {
    const { ws, pending } = await connected();
    ws.serverClose(4000);
    await body(pending);
    await body(get({ filter: "1", timeout: "0", since: "h2" }));
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("on waking up, a socket that does not answer a ping is replaced by HTTP /sync", async () => {
    const { ws, pending } = await connected();
    vi.useFakeTimers();
    f.check();
    expect(ws.sentOf("ping")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5100);
    expect(ws.closedWith).toBe(1000);
    vi.useRealTimers();
    expect((await body(pending)).next_batch).toBe("h2");
  });

  it("on waking up, a socket that answers stays", async () => {
    const { ws } = await connected();
    vi.useFakeTimers();
    f.check();
    ws.receive({ type: "pong", id: ws.sentOf("ping")[0].id });
    await vi.advanceTimersByTimeAsync(5100);
    expect(ws.closedWith).toBeNull();
  });

  it("a socket silent for two heartbeats is dead", async () => {
    await body(get({ filter: "1", timeout: "0" }));
    vi.useFakeTimers();
    const pending = get({ filter: "1", timeout: "300000", since: "h1" });
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeSocket.all[0];
    ws.accept(1000);
    await vi.advanceTimersByTimeAsync(1000);
    ws.receive({ type: "idle", token: "h1" });
    await vi.advanceTimersByTimeAsync(1900);
    expect(ws.closedWith).toBeNull();
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws.closedWith).toBe(1000);
    vi.useRealTimers();
    expect((await body(pending)).next_batch).toBe("h2");
  });

  it("an aborted /sync rejects as fetch does, and keeps the frames for the next one", async () => {
    const { ws, pending } = await connected();
    ws.frame("s2", timeline("!r", ["1"]));
    await body(pending);
    const ctl = new AbortController();
    const aborted = get({ filter: "1", timeout: "30000", since: "s2" }, ctl.signal);
    await tick();
    ctl.abort();
    await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
    ws.frame("s3", timeline("!r", ["2"]));
    expect(bodiesOf(await body(get({ filter: "1", timeout: "30000", since: "s2" })), "!r")).toEqual(["2"]);
  });

  it("another filter at the same position continues on a new socket, without HTTP", async () => {
    const { ws, pending } = await connected();
    ws.frame("s2", timeline("!r", ["1"]));
    await body(pending);
    const next = get({ filter: "1", timeout: "30000", since: "s2", set_presence: "unavailable" });
    await tick();
    const ws2 = FakeSocket.all.at(-1)!;
    expect(ws2).not.toBe(ws);
    ws2.accept();
    expect(ws2.sentOf("subscribe")[0]).toEqual({ type: "subscribe", mode: "sync", since: "s2", filter: "1", set_presence: "unavailable" });
    ws2.frame("s3", timeline("!r", ["2"]));
    expect((await body(next)).next_batch).toBe("s3");
    expect(httpSyncs).toHaveLength(1);
  });

  it("a refreshed access token is sent on the open socket", async () => {
    const { ws, pending } = await connected();
    ws.frame("s2");
    await body(pending);
    void f(`${SYNC}?filter=1&timeout=30000&since=s2`, { headers: { Authorization: "Bearer tok2" } });
    await tick();
    expect(ws.sentOf("auth").at(-1)).toEqual({ type: "auth", access_token: "tok2" });
  });
});

describe("mergeSyncResponses", () => {
  it("appends timelines, events and to-device messages in order; keeps the first gap", () => {
    const a = { next_batch: "1", ...timeline("!r", ["a"], { limited: true, prev_batch: "p" }), to_device: { events: [1] }, account_data: { events: ["x"] } };
    const b = { next_batch: "2", ...timeline("!r", ["b"]), to_device: { events: [2] }, presence: { events: ["p"] } };
    const m = mergeSyncResponses(a, b)!;
    expect(m.next_batch).toBe("2");
    expect(bodiesOf(m, "!r")).toEqual(["a", "b"]);
    const t = (m.rooms as { join: Record<string, { timeline: Json }> }).join["!r"].timeline;
    expect(t.limited).toBe(true);
    expect(t.prev_batch).toBe("p");
    expect(m.to_device).toEqual({ events: [1, 2] });
    expect(m.account_data).toEqual({ events: ["x"] });
    expect(m.presence).toEqual({ events: ["p"] });
  });

  it("keeps the newest counts; per-thread counts as the newest frame has them", () => {
    const room = (extra: Json) => ({ rooms: { join: { "!r": { timeline: { events: [] }, ...extra } } } });
    const a = room({ unread_notifications: { notification_count: 1 }, unread_thread_notifications: { $t: { notification_count: 1 } }, ephemeral: { events: ["typing"] }, summary: { "m.joined_member_count": 2 } });
    const b = room({ unread_notifications: { notification_count: 3 }, ephemeral: { events: ["receipt"] }, summary: { "m.invited_member_count": 1 } });
    const r = (mergeSyncResponses(a, b)!.rooms as { join: Record<string, Json> }).join["!r"];
    expect(r.unread_notifications).toEqual({ notification_count: 3 });
    expect("unread_thread_notifications" in r).toBe(false);
    expect(r.ephemeral).toEqual({ events: ["typing", "receipt"] });
    expect(r.summary).toEqual({ "m.joined_member_count": 2, "m.invited_member_count": 1 });
  });

  it("device lists: the newest word on each user", () => {
    const m = mergeSyncResponses({ device_lists: { changed: ["@a", "@b"], left: ["@c"] } }, { device_lists: { changed: ["@c"], left: ["@a"] } })!;
    expect(m.device_lists).toEqual({ changed: ["@b", "@c"], left: ["@a"] });
  });

  it("refuses what one response can't say: a gap, state between timelines, a membership change", () => {
    expect(mergeSyncResponses(timeline("!r", ["a"]), timeline("!r", ["b"], { limited: true }))).toBeNull();
    const withState = { rooms: { join: { "!r": { timeline: { events: [] }, state: { events: [{ type: "m.room.name" }] } } } } };
    expect(mergeSyncResponses(timeline("!r", ["a"]), withState)).toBeNull();
    expect(mergeSyncResponses(timeline("!r", ["a"]), { rooms: { leave: { "!r": { timeline: { events: [] } } } } })).toBeNull();
    expect(mergeSyncResponses({ rooms: { invite: { "!r": {} } } }, { rooms: { invite: { "!r": {} } } })).toBeNull();
  });
});

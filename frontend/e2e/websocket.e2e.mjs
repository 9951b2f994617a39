// The PWA's /sync over WSPR's WebSocket stream (docs/websocket.md; src/lib/wsSync.ts), in Chromium
// against WSPR (the stream is WSPR's): after the first /sync (over HTTP) messages come over the socket
// with no HTTP /sync at all; the socket resumes after the server restarts, and after the browser went
// offline and back, without losing or repeating a message.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerApi, registerInApp, startEnvironment } from "./browser.mjs";
import { repoDir } from "./servers.mjs";

const run = Date.now().toString(36).slice(-5);
const ALICE = `alice${run}`;
const enc = encodeURIComponent;
let env, context, alice, aliceId, bob, room;
/** the server started again by this file (the environment's own was stopped) */
let restarted = null;
const httpSyncs = [];
const sockets = [];
/** when alice's app sent each `ping` frame (its check of the socket on waking up or coming online) */
const pings = [];

const shot = (name) => alice.screenshot({ path: join(ART, `wspr-websocket-${name}.png`) });
const body = (text) => alice.locator("[data-testid=message-body]", { hasText: new RegExp(`^${text}$`) });

async function say(texts) {
  for (const text of texts) {
    const txn = `${Date.now()}-${Math.random()}`;
    await api(env, bob.token, "PUT", `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/${enc(txn)}`, { msgtype: "m.text", body: text });
  }
}

/** Each message is on screen exactly once. */
async function seeOnce(texts, timeout = 30000) {
  for (const text of texts) {
    await body(text).waitFor({ timeout }).catch(async (e) => {
      await shot(`missing-${text.replace(/\W+/g, "-")}`);
      throw e;
    });
  }
  for (const text of texts) assert.equal(await body(text).count(), 1, `"${text}" shown once`);
}

const openSockets = () => sockets.filter((s) => !s.isClosed());

async function eventually(fn, what, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await fn()) return;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function waitForServer(baseUrl, timeout = 60000) {
  await eventually(() => fetch(`${baseUrl}/_matrix/client/versions`).then((r) => r.ok, () => false), "the homeserver to answer", timeout);
}

before(async () => {
  env = await startEnvironment({ kind: "wspr", name: "websocket" });
  const versions = await (await fetch(`${env.hs.baseUrl}/_matrix/client/versions`)).json();
  assert.equal(versions.unstable_features?.["org.wspr.websocket"], true, "WSPR offers the stream");
  alice = await newPage(env, "alice");
  context = alice.context();
  alice.on("request", (r) => {
    if (new URL(r.url()).pathname.endsWith("/_matrix/client/v3/sync")) httpSyncs.push(r.url());
  });
  alice.on("websocket", (ws) => {
    if (!ws.url().includes("org.wspr.websocket")) return;
    sockets.push(ws);
    ws.on("framesent", (f) => typeof f.payload === "string" && f.payload.includes('"ping"') && pings.push(Date.now()));
  });
  await registerInApp(env, alice, ALICE);
  aliceId = `@${ALICE}:localhost`;
  bob = await registerApi(env, `bob${run}`);
  room = (await api(env, bob.token, "POST", "/_matrix/client/v3/createRoom", { name: "Stream", preset: "private_chat", invite: [aliceId] })).room_id;
  await api(env, await accessToken(alice), "POST", `/_matrix/client/v3/join/${enc(room)}`, {});
  await alice.locator(`[data-testid=room-row][data-room-id="${room}"]`).waitFor({ timeout: 30000 });
  await alice.locator(`[data-testid=room-row][data-room-id="${room}"] .room-row-main`).click();
  await alice.locator(`[data-testid=room-view][data-room-id="${room}"]`).waitFor();
});

after(async () => {
  await env?.stop();
  if (restarted && restarted.exitCode === null) {
    restarted.kill("SIGTERM");
    await Promise.race([new Promise((r) => restarted.once("exit", r)), new Promise((r) => setTimeout(r, 5000))]);
    if (restarted.exitCode === null) restarted.kill("SIGKILL");
  }
});

test("after the first /sync, messages come over the WebSocket: no HTTP /sync", async () => {
  assert.equal(openSockets().length, 1, "one socket open");
  assert.equal(httpSyncs.length, 1, `only the first /sync went over HTTP: ${httpSyncs.join("\n")}`);
  await say(["one by one 1"]);
  await seeOnce(["one by one 1"]);
  await say(["one by one 2"]);
  await seeOnce(["one by one 2"]);
  const burst = Array.from({ length: 15 }, (_, i) => `burst ${i + 1}`);
  await say(burst);
  await seeOnce(burst);
  assert.equal(httpSyncs.length, 1, "still no HTTP /sync");
  assert.equal(sockets.length, 1, "the same socket all along");
});

test("the server restarts: the socket resumes from its token, nothing lost or repeated", async () => {
  // sent just before the stop: delivered before it, or on resuming, but once either way
  await say(["before restart 1", "before restart 2"]);
  const cfg = join(env.workDir, "wspr", "wspr.yaml");
  await env.hs.stop();
  await eventually(() => openSockets().length === 0, "the socket to close with the server");
  const venvBin = process.env.E2E_VENV_BIN || join(repoDir, ".venv", "bin");
  const log = openSync(join(ART, "websocket-restarted-server.log"), "w");
  restarted = spawn(join(venvBin, "wspr"), ["run", "-c", cfg], { cwd: join(env.workDir, "wspr"), stdio: ["ignore", log, log] });
  closeSync(log);
  await waitForServer(env.hs.baseUrl);
  await say(["after restart 1", "after restart 2"]);
  await seeOnce(["before restart 1", "before restart 2", "after restart 1", "after restart 2"], 60000);
  await eventually(() => openSockets().length === 1, "a new socket", 60000);
  // back on the socket: new messages need no HTTP /sync
  await alice.waitForTimeout(1000);
  const before = httpSyncs.length;
  await say(["on the new socket 1", "on the new socket 2"]);
  await seeOnce(["on the new socket 1", "on the new socket 2"]);
  assert.equal(httpSyncs.length, before, "no HTTP /sync once the socket is back");
  await seeOnce(["one by one 1", "burst 15"]);
});

test("offline and back online: the app catches up, nothing lost or repeated", async () => {
  const socketsBefore = sockets.length;
  const offlineAt = Date.now();
  await context.setOffline(true);
  try {
    await say(["while offline 1", "while offline 2", "while offline 3"]);
    await alice.waitForTimeout(2000);
  } finally {
    await context.setOffline(false);
  }
  await seeOnce(["while offline 1", "while offline 2", "while offline 3"], 60000);
  await eventually(() => openSockets().length === 1, "a socket after coming back online", 60000);
  assert.ok(pings.some((t) => t > offlineAt), "coming back online, the app checked its socket with a ping");
  await alice.waitForTimeout(1000);
  const before = httpSyncs.length;
  await say(["back online 1"]);
  await seeOnce(["back online 1"]);
  assert.equal(httpSyncs.length, before, "no HTTP /sync once the socket is back");
  await seeOnce(["before restart 2", "after restart 2", "on the new socket 2"]);
  console.log(`# sockets opened: ${sockets.length} (${sockets.length - socketsBefore} across offline), HTTP /syncs: ${httpSyncs.length}`);
  await shot("01-caught-up");
});

test("waking up (the page visible again), the app checks its socket and goes on with it", async () => {
  const at = Date.now();
  await alice.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
  await eventually(() => pings.some((t) => t >= at), "a ping after the page became visible");
  await alice.waitForTimeout(6000); // past the pong's deadline: a live socket is kept
  assert.equal(openSockets().length, 1);
  const before = httpSyncs.length;
  await say(["after waking 1"]);
  await seeOnce(["after waking 1"]);
  assert.equal(httpSyncs.length, before, "no HTTP /sync: the same socket");
});

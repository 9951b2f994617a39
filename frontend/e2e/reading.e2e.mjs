// Reading position on a real homeserver (WSPR, or Synapse with E2E_HOMESERVER=synapse): a room opens at
// the read marker with a "New messages" line; "jump to latest"; receipts and m.fully_read follow what
// the reader has seen (checked on the server); on a new device, where the marker is older than what is
// loaded, "Jump to first unread message" pages back to it; "mark as read".
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerApi, registerInApp, signInInApp, startEnvironment } from "./browser.mjs";

const run = Date.now().toString(36).slice(-5);
const ALICE = `alice${run}`;
let env, alice, aliceToken, aliceId, bob, club, elsewhere;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-reading-${name}.png`) });
const body = (page, text) => page.locator("[data-testid=message-body]", { hasText: new RegExp(`^${text}$`) });
const enc = encodeURIComponent;

async function openRoom(page, roomId) {
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click();
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
}

async function say(token, roomId, texts) {
  const ids = [];
  for (const text of texts) {
    const txn = `${Date.now()}-${Math.random()}`;
    ids.push((await api(env, token, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${enc(txn)}`, { msgtype: "m.text", body: text })).event_id);
  }
  return ids;
}

const range = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}`);

/** alice's read marker in the room (account data), as the server has it. */
async function fullyRead(roomId) {
  const r = await fetch(`${env.hs.baseUrl}/_matrix/client/v3/user/${enc(aliceId)}/rooms/${enc(roomId)}/account_data/m.fully_read`, { headers: { Authorization: `Bearer ${aliceToken}` } });
  return r.status === 200 ? (await r.json()).event_id : null; // none yet: 404
}

/** A sync filter for one room, new each time: Synapse answers the same initial sync from a cache for
 * two minutes (sync_response_cache_duration). */
function freshFilter(roomId) {
  return JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 1, not_types: [`x.poll.${Date.now()}.${Math.random()}`] } }, presence: { not_types: ["*"] } });
}

/** The events alice's public read receipts are on, as bob's /sync shows them (an unthreaded one and
 * the main timeline's, where the server supports threads). */
async function aliceReceipts(roomId) {
  const filter = freshFilter(roomId);
  const sync = await api(env, bob.token, "GET", `/_matrix/client/v3/sync?filter=${enc(filter)}`);
  const on = new Set();
  for (const ev of sync.rooms?.join?.[roomId]?.ephemeral?.events ?? []) {
    if (ev.type !== "m.receipt") continue;
    for (const [eventId, kinds] of Object.entries(ev.content)) if (kinds["m.read"]?.[aliceId]) on.add(eventId);
  }
  return on;
}

/** alice's notification count for the room, which the server keeps from her receipts (threaded or not). */
async function unreadOnServer(roomId) {
  const filter = freshFilter(roomId);
  const sync = await api(env, aliceToken, "GET", `/_matrix/client/v3/sync?filter=${enc(filter)}`);
  return sync.rooms?.join?.[roomId]?.unread_notifications?.notification_count ?? 0;
}

async function eventually(fn, what, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Whether the element is inside the timeline's visible area. */
function inView(page, locator) {
  return locator.evaluate((el) => {
    const t = document.querySelector("[data-testid=timeline]").getBoundingClientRect();
    const r = el.getBoundingClientRect();
    return r.top >= t.top - 1 && r.bottom <= t.bottom + 1;
  });
}

before(async () => {
  env = await startEnvironment({ name: "reading" });
  alice = await newPage(env, "alice", { colorScheme: "light" });
  await registerInApp(env, alice, ALICE);
  aliceToken = await accessToken(alice);
  aliceId = `@${ALICE}:localhost`;
  bob = await registerApi(env, `bob${run}`);
  club = (await api(env, bob.token, "POST", "/_matrix/client/v3/createRoom", { name: "Reading club", preset: "private_chat", invite: [aliceId] })).room_id;
  elsewhere = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Elsewhere" })).room_id;
  await api(env, aliceToken, "POST", `/_matrix/client/v3/join/${enc(club)}`, {});
  await alice.locator(`[data-testid=room-row][data-room-id="${club}"]`).waitFor({ timeout: 30000 });
});

after(async () => {
  await env?.stop();
});

test("reading a room sends the receipt and moves the read marker", async () => {
  const ids = await say(bob.token, club, range("early", 5));
  await openRoom(alice, club);
  await body(alice, "early 5").waitFor({ timeout: 30000 });
  await eventually(async () => (await fullyRead(club)) === ids[4], "m.fully_read on the newest message");
  await eventually(async () => (await aliceReceipts(club)).has(ids[4]), "alice's m.read receipt on the newest message");
  assert.equal(await alice.getByTestId("unread-line").count(), 0, "nothing was unread");
  assert.equal(await alice.getByTestId("jump-to-latest").count(), 0);
});

test("a room opens at the read marker, with the unread line; jump to latest reads the rest", async () => {
  await openRoom(alice, elsewhere);
  const ids = await say(bob.token, club, range("unread", 40));
  const row = alice.locator(`[data-testid=room-row][data-room-id="${club}"]`);
  await row.locator(".badge").waitFor({ timeout: 30000 });
  assert.match(await alice.title(), /^\(\d+\) WSPR$/, "unread count in the title");
  await openRoom(alice, club);
  const line = alice.getByTestId("unread-line");
  await line.waitFor({ timeout: 30000 }).catch(async (e) => {
    await shot(alice, "failed-open-at-marker");
    throw e;
  });
  await body(alice, "unread 1").waitFor();
  assert.ok(await inView(alice, line), "the unread line is on screen");
  assert.ok(await inView(alice, body(alice, "unread 1")), "the first unread message is on screen");
  assert.equal(await inView(alice, body(alice, "unread 40")), false, "not scrolled to the newest");
  await alice.getByTestId("jump-to-latest").waitFor();
  await shot(alice, "01-opened-at-marker-desktop-light");
  // not everything has been seen yet: the marker and the receipt stay short of the newest
  await alice.waitForTimeout(1500);
  assert.notEqual(await fullyRead(club), ids[39]);
  assert.ok(!(await aliceReceipts(club)).has(ids[39]), "no receipt on the newest yet");
  assert.ok((await unreadOnServer(club)) > 0, "the server still counts unread messages");
  await alice.setViewportSize({ width: 390, height: 844 });
  await alice.getByTestId("jump-to-latest").waitFor();
  await shot(alice, "02-unread-line-phone-light");
  await alice.setViewportSize({ width: 1280, height: 800 });

  await alice.getByTestId("jump-to-latest").click();
  await alice.getByTestId("jump-to-latest").waitFor({ state: "detached" });
  assert.ok(await inView(alice, body(alice, "unread 40")));
  await eventually(async () => (await fullyRead(club)) === ids[39], "m.fully_read on the newest after jumping to it");
  await eventually(async () => (await unreadOnServer(club)) === 0, "the server counting everything read (the receipt on the newest)");
  await row.locator(".badge").waitFor({ state: "detached", timeout: 30000 });
  assert.equal(await alice.title(), "WSPR");
});

test("on a new device, 'Jump to first unread message' pages back to the marker; mark as read", async () => {
  await openRoom(alice, elsewhere);
  await say(bob.token, club, range("later", 200));
  // the same account on a phone: only the newest 30 events are loaded, the marker is far older (more
  // than the few pages loaded to open a room at its marker)
  const phone = await newPage(env, "alice-phone", { colorScheme: "dark", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await signInInApp(env, phone, ALICE);
  await openRoom(phone, club);
  await body(phone, "later 200").waitFor({ timeout: 30000 });
  const jump = phone.getByTestId("jump-to-unread");
  await jump.waitFor({ timeout: 30000 });
  await shot(phone, "03-jump-to-first-unread-phone-dark");
  await jump.getByRole("button", { name: /Jump to first unread/ }).click();
  const first = body(phone, "later 1");
  await first.waitFor({ timeout: 60000 });
  await phone.waitForFunction(() => {
    const line = document.querySelector("[data-testid=unread-line]");
    const t = document.querySelector("[data-testid=timeline]").getBoundingClientRect();
    const r = line?.getBoundingClientRect();
    return r && r.top >= t.top - 1 && r.bottom <= t.bottom + 1;
  }, null, { timeout: 30000 });
  // the view may still be settling (a late layout pass) when the line first shows: wait for both
  await eventually(() => inView(phone, first), "the first unread message is on screen");
  await jump.waitFor({ state: "detached" }); // the line is on screen: no need to offer it
  await shot(phone, "04-first-unread-phone-dark");
  await phone.setViewportSize({ width: 1280, height: 800 });
  await shot(phone, "05-first-unread-desktop-dark");
  // scrolled up again from the bottom: the bar comes back, and its × marks everything read
  await phone.getByTestId("jump-to-latest").click();
  await phone.getByTestId("jump-to-unread").waitFor();
  await phone.getByTestId("mark-read").click();
  await phone.getByTestId("jump-to-unread").waitFor({ state: "detached" });
  assert.equal(await phone.getByTestId("unread-line").count(), 0);
  const newest = (await api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${enc(club)}/messages?dir=b&limit=1`)).chunk[0].event_id;
  await eventually(async () => (await fullyRead(club)) === newest, "mark as read puts the marker on the newest");
});

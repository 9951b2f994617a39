// Accessibility, end to end: axe-core on every main screen and dialog of the app (light and dark,
// phone and desktop), with zero serious or critical violations; the timeline is a live region; and
// replying and reacting work with the keyboard alone (no mouse, no hover).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerApi, registerInApp, startEnvironment } from "./browser.mjs";
import { axeCollector } from "./axe.mjs";

const run = Date.now().toString(36).slice(-5);
const enc = encodeURIComponent;
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
const COMBOS = [
  { theme: "light", size: DESKTOP, name: "desktop-light" },
  { theme: "dark", size: DESKTOP, name: "desktop-dark" },
  { theme: "light", size: PHONE, name: "phone-light" },
  { theme: "dark", size: PHONE, name: "phone-dark" },
];
let env, alice, aliceToken, bob, roomId;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-a11y-${name}.png`) });
const roomView = (page) => page.getByTestId("room-view");
const message = (page, text) => roomView(page).locator("[data-testid=message]", { has: page.locator("[data-testid=message-body]", { hasText: text }) });

async function setLook(page, { theme, size }) {
  await page.emulateMedia({ colorScheme: theme });
  await page.setViewportSize(size);
  await page.waitForFunction((t) => document.documentElement.dataset.theme === t, theme);
  // let layout and transitions (.btn's background: .15s) settle before the contrast checks
  await page.waitForTimeout(400);
}

async function waitFor(what, fn, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** On a phone the room list and a room are separate screens: back to the list if a room is open. */
async function toRoomList(page) {
  const back = page.getByRole("button", { name: "Back to rooms" });
  if (await back.isVisible()) await back.click();
  await page.getByTestId("open-settings").waitFor();
}

async function openRoom(page, id) {
  await page.locator(`[data-testid=room-row][data-room-id="${id}"] .room-row-main`).click();
  await page.locator(`[data-testid=room-view][data-room-id="${id}"]`).waitFor();
}

async function sendAs(who, id, content) {
  return (await api(env, who.token, "PUT", `/_matrix/client/v3/rooms/${enc(id)}/send/m.room.message/t${Date.now()}${Math.random().toString(36).slice(2)}`, content)).event_id;
}

before(async () => {
  env = await startEnvironment({ name: "a11y" });
  alice = await newPage(env, "alice", { colorScheme: "light" });
});

after(async () => {
  await env?.stop();
});

test("sign-in and sign-up pages", async () => {
  const a = axeCollector();
  await alice.goto(env.appUrl);
  await alice.locator('input[name="homeserver"]').waitFor();
  for (const look of COMBOS) {
    await setLook(alice, look);
    await alice.getByRole("tab", { name: "Sign in" }).click();
    await a.check(alice, `sign-in ${look.name}`);
    await alice.getByRole("tab", { name: "Create account" }).click();
    await alice.locator('input[name="confirm"]').waitFor();
    await a.check(alice, `sign-up ${look.name}`);
  }
  await setLook(alice, COMBOS[0]);
  a.assert();
});

test("room list and a room with messages, a reply, a reaction and an image", async () => {
  await registerInApp(env, alice, `alice${run}`);
  aliceToken = await accessToken(alice);
  const aliceId = (await api(env, aliceToken, "GET", "/_matrix/client/v3/account/whoami")).user_id;
  bob = await registerApi(env, `bob${run}`);
  await api(env, bob.token, "PUT", `/_matrix/client/v3/profile/${enc(bob.userId)}/displayname`, { displayname: "Bob Builder" });
  ({ room_id: roomId } = await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Garden party", topic: "Saturday at noon", preset: "private_chat", invite: [bob.userId] }));
  await api(env, bob.token, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, {});
  await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Book club", preset: "private_chat" });
  const first = await sendAs(bob, roomId, { msgtype: "m.text", body: "Shall we bring lemonade?" });
  // a reply without the old fallback (MSC2781), with some formatting
  await sendAs({ token: aliceToken }, roomId, {
    msgtype: "m.text",
    body: "Yes, and *cake*",
    format: "org.matrix.custom.html",
    formatted_body: "Yes, and <em>cake</em>",
    "m.relates_to": { "m.in_reply_to": { event_id: first } },
  });
  await api(env, bob.token, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.reaction/r${run}`, { "m.relates_to": { rel_type: "m.annotation", event_id: first, key: "👍" } });
  // an image: a screenshot of the page, uploaded as bob
  const png = await alice.screenshot({ clip: { x: 0, y: 0, width: 320, height: 200 } });
  const up = await fetch(`${env.hs.baseUrl}/_matrix/media/v3/upload?filename=garden.png`, { method: "POST", headers: { Authorization: `Bearer ${bob.token}`, "Content-Type": "image/png" }, body: png });
  const { content_uri } = await up.json();
  await sendAs(bob, roomId, { msgtype: "m.image", body: "garden.png", url: content_uri, info: { mimetype: "image/png", w: 320, h: 200, size: png.length } });
  await sendAs(bob, roomId, { msgtype: "m.text", body: `See you there, ${aliceId}!` });
  await alice.locator(`[data-testid=room-row][data-room-id="${roomId}"]`).waitFor();

  const a = axeCollector();
  await setLook(alice, COMBOS[0]);
  await a.check(alice, "room list, no room open");
  await openRoom(alice, roomId);
  await message(alice, "See you there").waitFor();
  await roomView(alice).locator(".reaction").first().waitFor();
  await roomView(alice).locator("img").first().waitFor();
  // the timeline announces new messages, politely, without re-reading the whole list
  const log = roomView(alice).getByRole("log");
  assert.equal(await log.count(), 1);
  assert.equal(await log.getAttribute("aria-live"), "polite");
  for (const look of COMBOS) {
    await setLook(alice, look);
    await a.check(alice, `room ${look.name}`);
    await shot(alice, `room-${look.name}`);
    // the action bar of a focused message
    await message(alice, "Shall we bring lemonade?").focus();
    await a.check(alice, `room, a message focused ${look.name}`);
    if (look.size === PHONE) {
      await alice.getByRole("button", { name: "Back to rooms" }).click();
      await alice.getByTestId("room-list").waitFor();
      await a.check(alice, `room list ${look.name}`);
      await openRoom(alice, roomId);
    }
  }
  await setLook(alice, COMBOS[0]);
  a.assert();
});

test("composer: autocomplete open and a reply being written", async () => {
  const a = axeCollector();
  const input = roomView(alice).getByTestId("composer-input");
  for (const look of COMBOS) {
    await setLook(alice, look);
    await input.fill("@bo");
    await alice.getByTestId("suggestion").first().waitFor();
    await a.check(alice, `composer autocomplete ${look.name}`);
    await input.fill("");
  }
  await setLook(alice, COMBOS[0]);
  const m = message(alice, "See you there");
  await m.hover();
  await m.getByRole("button", { name: "Reply", exact: true }).click();
  await a.check(alice, "composer replying");
  await input.press("Escape");
  a.assert();
});

test("settings, room settings and new-room dialogs, every tab", async () => {
  const a = axeCollector();
  for (const look of COMBOS) {
    await setLook(alice, look);
    await toRoomList(alice);
    await alice.getByTestId("open-settings").click();
    const dialog = alice.getByTestId("settings-dialog");
    for (const tab of ["Profile", "Account", "Security & backup", "Devices", "Notifications", "Appearance"]) {
      await dialog.getByRole("tab", { name: tab }).click();
      await alice.waitForTimeout(300);
      await a.check(alice, `settings ${tab} ${look.name}`);
    }
    await dialog.getByRole("button", { name: "Close" }).click();

    if (look.size === PHONE) await openRoom(alice, roomId);
    await alice.getByTestId("room-settings").click();
    const rs = alice.getByTestId("room-settings-dialog");
    for (const tab of ["general", "people", "permissions", "privacy", "advanced"]) {
      await rs.getByTestId(`room-tab-${tab}`).click();
      await alice.waitForTimeout(300);
      await a.check(alice, `room settings ${tab} ${look.name}`);
    }
    await rs.getByRole("button", { name: "Close" }).click();
    await toRoomList(alice);

    await alice.getByTestId("new-chat").click();
    const tabs = alice.getByRole("dialog").getByRole("tab");
    const n = await tabs.count();
    for (let i = 0; i < Math.max(n, 1); i++) {
      if (n) await tabs.nth(i).click();
      await alice.waitForTimeout(200);
      await a.check(alice, `new chat tab ${i} ${look.name}`);
    }
    await alice.getByRole("dialog").getByRole("button", { name: "Close" }).click();
  }
  await setLook(alice, COMBOS[0]);
  a.assert();
});

test("search panel, thread list and a thread", async () => {
  const a = axeCollector();
  const rootText = "Who brings the chairs?";
  const root = await sendAs(bob, roomId, { msgtype: "m.text", body: rootText });
  await sendAs(bob, roomId, { msgtype: "m.text", body: "I can bring four", "m.relates_to": { rel_type: "m.thread", event_id: root, is_falling_back: true, "m.in_reply_to": { event_id: root } } });
  await setLook(alice, COMBOS[0]);
  if (!(await roomView(alice).isVisible())) await openRoom(alice, roomId);
  await message(alice, rootText).waitFor();
  for (const look of COMBOS) {
    await setLook(alice, look);
    if (!(await roomView(alice).isVisible())) await openRoom(alice, roomId);
    await roomView(alice).getByTestId("open-search").click();
    await alice.getByTestId("search-input").fill("lemonade");
    await alice.getByTestId("search-input").press("Enter");
    await alice.getByTestId("search-result").first().waitFor();
    await a.check(alice, `search ${look.name}`);
    await alice.getByTestId("panel-close").click();
    await roomView(alice).getByTestId("open-threads").click();
    await alice.getByTestId("thread-item").first().waitFor();
    await a.check(alice, `thread list ${look.name}`);
    await alice.getByTestId("thread-item").first().click();
    await alice.getByTestId("thread-view").locator("[data-testid=message-body]", { hasText: "I can bring four" }).waitFor();
    await a.check(alice, `thread ${look.name}`);
    await alice.getByTestId("panel-close").click();
    await waitFor("panel closed", async () => (await alice.getByTestId("thread-view").count()) === 0);
  }
  await setLook(alice, COMBOS[0]);
  a.assert();
});

test("the recovery key dialog", async () => {
  const a = axeCollector();
  await setLook(alice, COMBOS[0]);
  await alice.getByTestId("open-settings").click();
  await alice.getByRole("tab", { name: "Security & backup" }).click();
  await alice.getByTestId("setup-recovery").click();
  await alice.getByTestId("new-recovery-key").waitFor({ timeout: 60000 });
  for (const look of COMBOS) {
    await setLook(alice, look);
    await a.check(alice, `recovery key ${look.name}`);
  }
  await setLook(alice, COMBOS[0]);
  await shot(alice, "recovery-key");
  const [download] = await Promise.all([alice.waitForEvent("download"), alice.getByTestId("recovery-key-download").click()]);
  assert.ok(download);
  await alice.getByTestId("recovery-key-confirm").check();
  await alice.getByTestId("recovery-key-done").click();
  await alice.getByTestId("recovery-key-saver").waitFor({ state: "detached" });
  await alice.getByTestId("settings-dialog").getByRole("button", { name: "Close" }).click();
  a.assert();
});

/** Presses `key` until `pred` holds in the page (the focused element), at most `max` times. */
async function pressUntil(page, key, pred, arg, max = 30) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate(pred, arg)) return;
    await page.keyboard.press(key);
  }
  throw new Error(`pressing ${key} ${max} times never got there`);
}

test("keyboard only: move through messages, react and reply without mouse or hover", async () => {
  await setLook(alice, COMBOS[0]);
  const target = "Shall we bring lemonade?";
  if (!(await roomView(alice).isVisible())) await openRoom(alice, roomId);
  // start in the composer, then Shift+Tab back into the timeline: one stop for all the messages
  await roomView(alice).getByTestId("composer-input").focus();
  await pressUntil(alice, "Shift+Tab", () => document.activeElement?.getAttribute("data-testid") === "message");
  // arrow keys move between messages
  await pressUntil(alice, "ArrowUp", ([t, sender]) => document.activeElement?.getAttribute("data-sender") === sender && document.activeElement.querySelector("[data-testid=message-body]")?.textContent.includes(t), [target, bob.userId]);
  const m = message(alice, target);
  // focus shows the message's actions
  assert.ok(await m.getByRole("button", { name: "React", exact: true }).isVisible());
  // Tab to React, Enter opens the quick reactions with the first one focused, Enter picks it
  await alice.keyboard.press("Tab");
  assert.equal(await alice.evaluate(() => document.activeElement?.getAttribute("aria-label")), "React");
  await alice.keyboard.press("Enter");
  await pressUntil(alice, "Tab", () => document.activeElement?.textContent === "🎉", null, 8);
  await alice.keyboard.press("Enter");
  await m.locator(".reaction", { hasText: "🎉" }).waitFor();
  // focus is back on React; Tab on to Reply, Space starts a reply and puts the cursor in the composer
  assert.equal(await alice.evaluate(() => document.activeElement?.getAttribute("aria-label")), "React");
  await pressUntil(alice, "Tab", () => document.activeElement?.getAttribute("aria-label") === "Reply", null, 4);
  await alice.keyboard.press("Space");
  await roomView(alice).getByText("Replying to Bob Builder").waitFor();
  assert.equal(await alice.evaluate(() => document.activeElement?.getAttribute("data-testid")), "composer-input");
  await alice.keyboard.type("Pink lemonade, by keyboard");
  await alice.keyboard.press("Enter");
  const reply = message(alice, "Pink lemonade, by keyboard");
  await reply.waitFor();
  await reply.locator(".reply-quote", { hasText: "Shall we bring lemonade?" }).waitFor();
  // and the server has both: the reaction and the reply relation
  await waitFor("the reaction and the reply on the server", async () => {
    const events = (await api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=30`)).chunk;
    return (
      events.some((e) => e.type === "m.reaction" && e.content["m.relates_to"]?.key === "🎉") &&
      events.some((e) => e.type === "m.room.message" && e.content.body?.includes("Pink lemonade, by keyboard") && e.content["m.relates_to"]?.["m.in_reply_to"])
    );
  });
  await shot(alice, "keyboard-reply-reaction");
});

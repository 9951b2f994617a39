// Notifications while the app is open, on a real homeserver (WSPR, or Synapse with
// E2E_HOMESERVER=synapse): desktop notifications as the push rules say (decrypted text from an
// encrypted DM, none for the room being read), the unread count in the title and the app badge, and
// the per-room settings (all messages, mentions and keywords, mute) written as Element's push rules.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerInApp, startEnvironment } from "./browser.mjs";

const run = Date.now().toString(36).slice(-5);
let env, alice, bob, aliceToken, aliceId, bobId, team, dm, elsewhere;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-notifications-${name}.png`) });
const enc = encodeURIComponent;
const body = (page, text) => page.locator("[data-testid=message-body]", { hasText: text });

/** Records every notification the page shows (through the service worker or not) and badge changes. */
function captureNotifications() {
  window.__notes = [];
  window.__badges = [];
  const record = (title, options) => window.__notes.push({ title, body: options?.body ?? "", tag: options?.tag ?? "" });
  const show = ServiceWorkerRegistration.prototype.showNotification;
  ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
    record(title, options);
    return show.call(this, title, options);
  };
  const Native = window.Notification;
  window.Notification = class extends Native {
    constructor(title, options) {
      super(title, options);
      record(title, options);
    }
  };
  navigator.setAppBadge = (n) => (window.__badges.push(n ?? null), Promise.resolve());
  navigator.clearAppBadge = () => (window.__badges.push(0), Promise.resolve());
}

const notes = (page) => page.evaluate(() => window.__notes);

async function waitForNote(page, match, what) {
  await page.waitForFunction((m) => window.__notes.some((n) => n.title.includes(m.title) && n.body.includes(m.body)), match, { timeout: 30000 }).catch(async () => {
    assert.fail(`no notification ${what}: ${JSON.stringify(await notes(page))}`);
  });
}

async function openRoom(page, roomId) {
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click();
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
  await page.getByTestId("composer-input").waitFor();
}

async function send(page, text) {
  await page.getByTestId("composer-input").fill(text);
  await page.getByTestId("composer-input").press("Enter");
}

async function rule(kind, ruleId) {
  const r = await fetch(`${env.hs.baseUrl}/_matrix/client/v3/pushrules/global/${kind}/${enc(ruleId)}`, { headers: { Authorization: `Bearer ${aliceToken}` } });
  return r.status === 200 ? r.json() : null;
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

async function chooseRoomSetting(state) {
  await alice.getByTestId("room-notifications").click();
  await alice.getByTestId("room-notifications-menu").waitFor();
  if (state === "mentions") await shot(alice, "01-room-menu-desktop-light");
  await alice.getByTestId(`notif-${state}`).click();
  await alice.locator(`[data-testid=room-notifications][data-state=${state}]`).waitFor();
}

before(async () => {
  env = await startEnvironment({ name: "notifications" });
  alice = await newPage(env, "alice", { colorScheme: "light", permissions: ["notifications"] });
  await alice.context().addInitScript(captureNotifications);
  bob = await newPage(env, "bob", { colorScheme: "dark" });
  await Promise.all([registerInApp(env, alice, `alice${run}`), registerInApp(env, bob, `bob${run}`)]);
  [aliceToken] = await Promise.all([accessToken(alice)]);
  const bobToken = await accessToken(bob);
  aliceId = `@alice${run}:localhost`;
  bobId = `@bob${run}:localhost`;
  await api(env, aliceToken, "PUT", `/_matrix/client/v3/profile/${enc(aliceId)}/displayname`, { displayname: "Alice Archer" });
  await api(env, bobToken, "PUT", `/_matrix/client/v3/profile/${enc(bobId)}/displayname`, { displayname: "Bob Builder" });
  team = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Team", preset: "private_chat", invite: [bobId] })).room_id;
  dm = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", {
    is_direct: true,
    preset: "trusted_private_chat",
    invite: [bobId],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  })).room_id;
  await api(env, aliceToken, "PUT", `/_matrix/client/v3/user/${enc(aliceId)}/account_data/m.direct`, { [bobId]: [dm] });
  elsewhere = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Elsewhere" })).room_id;
  for (const r of [team, dm]) await api(env, bobToken, "POST", `/_matrix/client/v3/join/${enc(r)}`, {});
  for (const r of [team, dm, elsewhere]) await alice.locator(`[data-testid=room-row][data-room-id="${r}"]`).waitFor({ timeout: 30000 });
  await bob.locator(`[data-testid=room-row][data-room-id="${dm}"]`).waitFor({ timeout: 30000 });
});

after(async () => {
  await env?.stop();
});

test("desktop notifications follow the push rules, with decrypted text, not for the room being read", async () => {
  assert.equal(await alice.getByTestId("notification-prompt").count(), 0, "permission already granted: no prompt");
  await openRoom(alice, elsewhere);
  await openRoom(bob, team);
  await send(bob, "hello alice");
  await waitForNote(alice, { title: "Team", body: "Bob Builder: hello alice" }, "for a group message");
  await alice.waitForFunction(() => /^\(\d+\) WSPR$/.test(document.title), null, { timeout: 30000 });
  assert.ok((await alice.evaluate(() => window.__badges)).some((n) => n > 0), "the app badge shows the count");
  // an encrypted DM: the notification has the decrypted text
  await openRoom(bob, dm);
  await send(bob, "the secret is safe");
  await waitForNote(alice, { title: "Bob Builder", body: "the secret is safe" }, "with the decrypted text of an encrypted message");
  assert.ok((await notes(alice)).every((n) => n.tag), "tagged by room (one notification per room)");
  // reading the room: no notification for it, and the count goes
  await openRoom(alice, team);
  await openRoom(bob, team);
  const before = (await notes(alice)).length;
  await send(bob, "you are reading this");
  await body(alice, "you are reading this").waitFor({ timeout: 30000 });
  await openRoom(alice, dm);
  await alice.waitForFunction(() => document.title === "WSPR", null, { timeout: 30000 });
  await alice.waitForTimeout(1000);
  assert.equal((await notes(alice)).length, before, "no notification for the room on screen");
  assert.equal((await alice.evaluate(() => window.__badges)).at(-1), 0, "badge cleared");
});

test("per-room settings: mentions and keywords only, mute, all messages (Element's push rules)", async () => {
  await openRoom(alice, team);
  await chooseRoomSetting("mentions");
  await eventually(async () => (await rule("room", team))?.actions?.length === 0, "the room rule");
  await openRoom(alice, elsewhere);
  const count = (await notes(alice)).length;
  await send(bob, "just chatting");
  await alice.locator(`[data-testid=room-row][data-room-id="${team}"]`, { hasText: "just chatting" }).waitFor({ timeout: 30000 });
  await alice.waitForTimeout(1000);
  assert.equal((await notes(alice)).length, count, "no notification for a plain message");
  // a mention still notifies
  await bob.getByTestId("composer-input").pressSequentially("@Ali");
  await bob.getByTestId("suggestion").first().waitFor();
  await bob.getByTestId("composer-input").press("Enter");
  await bob.getByTestId("composer-input").pressSequentially("lunch?");
  await bob.getByTestId("composer-input").press("Enter");
  await waitForNote(alice, { title: "Team", body: "lunch?" }, "for a mention in a mentions-only room");

  await openRoom(alice, team);
  await chooseRoomSetting("mute");
  const override = await eventually(() => rule("override", team), "the override rule");
  assert.deepEqual(override?.actions, []);
  assert.deepEqual(override?.conditions, [{ kind: "event_match", key: "room_id", pattern: team }]);
  await eventually(async () => (await rule("room", team)) === null, "mute replaces mentions-only");
  await openRoom(alice, elsewhere);
  const muted = (await notes(alice)).length;
  await bob.getByTestId("composer-input").pressSequentially("@Ali");
  await bob.getByTestId("suggestion").first().waitFor();
  await bob.getByTestId("composer-input").press("Enter");
  await bob.getByTestId("composer-input").pressSequentially("are you there?");
  await bob.getByTestId("composer-input").press("Enter");
  const row = alice.locator(`[data-testid=room-row][data-room-id="${team}"]`);
  await row.filter({ hasText: "are you there?" }).waitFor({ timeout: 30000 });
  await row.getByTestId("muted-icon").waitFor();
  await alice.waitForTimeout(1000);
  assert.equal((await notes(alice)).length, muted, "a muted room never notifies");
  assert.equal(await row.locator(".badge").count(), 0, "nor counts");
  await shot(alice, "02-muted-room-desktop-light");

  await openRoom(alice, team);
  await chooseRoomSetting("all");
  await eventually(async () => (await rule("override", team)) === null && (await rule("room", team)) === null, "no rules for the room");
});

test("settings: desktop notifications, Web Push (where offered) and keywords", async () => {
  await alice.getByTestId("open-settings").click();
  await alice.getByRole("tab", { name: "Notifications" }).click();
  const tab = alice.getByTestId("notifications-tab");
  await tab.waitFor();
  assert.ok(await alice.getByTestId("desktop-notifications").isChecked());
  // WSPR offers Web Push through its own gateway; Synapse has no such gateway
  const offered = alice.getByTestId("web-push");
  if (env.kind === "wspr") await offered.waitFor();
  else await tab.getByText("doesn't offer Web Push").waitFor();
  await alice.getByTestId("keyword-input").fill("pineapple");
  await tab.getByRole("button", { name: "Add" }).click();
  await alice.getByTestId("keyword").filter({ hasText: "pineapple" }).waitFor({ timeout: 30000 });
  assert.equal((await rule("content", "pineapple"))?.pattern, "pineapple");
  await shot(alice, "03-settings-desktop-light");
  await alice.keyboard.press("Escape");
  // a keyword notifies in a mentions-only room
  await openRoom(alice, team);
  await chooseRoomSetting("mentions");
  await openRoom(alice, elsewhere);
  await send(bob, "who wants pineapple pizza");
  await waitForNote(alice, { title: "Team", body: "pineapple pizza" }, "for a keyword");

  // phone, dark: the room menu and the settings tab
  await bob.setViewportSize({ width: 390, height: 844 });
  await bob.getByTestId("room-notifications").click();
  await bob.getByTestId("room-notifications-menu").waitFor();
  await shot(bob, "04-room-menu-phone-dark");
  await bob.keyboard.press("Escape");
  await bob.getByTestId("room-notifications-menu").waitFor({ state: "detached" });
  await bob.getByRole("button", { name: "Back to rooms" }).click();
  await bob.getByTestId("open-settings").click();
  await bob.getByRole("tab", { name: "Notifications" }).click();
  await bob.getByTestId("notifications-tab").waitFor();
  await shot(bob, "05-settings-phone-dark");
  await bob.keyboard.press("Escape");
  await bob.setViewportSize({ width: 1280, height: 800 });
});

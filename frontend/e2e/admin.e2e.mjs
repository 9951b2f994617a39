// Room and account administration on a real homeserver (WSPR, or Synapse with E2E_HOMESERVER=synapse):
// the theme switch (light, dark, system; kept across reloads), the recovery key (saved as a file and
// confirmed before the dialog can close; a new one for a lost one; a full reset on a device without
// the secrets), room roles, permissions, remove and ban with a reason, join rules, history visibility,
// address and directory, room picture, invite link, a room upgrade, changing the password and
// deactivating an account. Every change is checked on the server, not only on screen.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ART, PASSWORD, accessToken, api, newPage, registerApi, registerInApp, signInInApp, startEnvironment } from "./browser.mjs";

const run = Date.now().toString(36).slice(-5);
const ALICE = `alice${run}`;
const NEW_PASSWORD = "a much longer passphrase 42";
const enc = encodeURIComponent;
let env, alice, aliceToken, aliceId, bob, carol, roomId;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-admin-${name}.png`) });

before(async () => {
  env = await startEnvironment({ name: "admin" });
  alice = await newPage(env, "alice", { colorScheme: "dark" });
  await registerInApp(env, alice, ALICE);
  aliceToken = await accessToken(alice);
  aliceId = (await api(env, aliceToken, "GET", "/_matrix/client/v3/account/whoami")).user_id;
  bob = await registerApi(env, `bob${run}`);
  carol = await registerApi(env, `carol${run}`);
});

after(async () => {
  await env?.stop();
});

async function openSettings(page, tab) {
  await page.getByTestId("open-settings").click();
  await page.getByTestId("settings-dialog").waitFor();
  await page.getByRole("tab", { name: tab }).click();
}

async function state(type, key = "") {
  return api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/state/${type}/${enc(key)}`);
}

async function waitFor(what, fn, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    let last;
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out: ${what}${last ? ` (${last.message})` : ""}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

test("theme: system by default, light or dark by choice, kept across reloads", async () => {
  const theme = () => alice.evaluate(() => document.documentElement.dataset.theme);
  assert.equal(await theme(), "dark", "system theme: the browser prefers dark");
  await openSettings(alice, "Appearance");
  await alice.getByTestId("appearance-tab").waitFor();
  assert.ok(await alice.getByTestId("theme-system").isChecked());
  await shot(alice, "01-appearance-desktop-dark");
  await alice.locator(".theme-option-light").click();
  assert.equal(await theme(), "light");
  const bg = await alice.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(246, 247, 251)", "the light palette applies");
  await shot(alice, "02-appearance-desktop-light");
  await alice.setViewportSize({ width: 390, height: 844 });
  await shot(alice, "03-appearance-phone-light");
  await alice.setViewportSize({ width: 1280, height: 800 });
  await alice.reload();
  await alice.getByTestId("room-list").waitFor({ timeout: 60000 });
  assert.equal(await theme(), "light", "the choice survives a reload");
  await openSettings(alice, "Appearance");
  await alice.locator(".theme-option-dark").click();
  assert.equal(await theme(), "dark");
  await alice.locator(".theme-option-system").click();
  assert.equal(await theme(), "dark");
  assert.equal(await alice.evaluate(() => localStorage.getItem("wspr.theme")), null);
  await alice.keyboard.press("Escape");
});

let firstKey;

test("recovery key: can't be dismissed before it's saved; downloaded as a file", async () => {
  await openSettings(alice, "Security & backup");
  await alice.getByTestId("setup-recovery").click();
  const saver = alice.getByTestId("recovery-key-saver");
  await saver.waitFor({ timeout: 60000 });
  firstKey = (await saver.locator("code").textContent()).trim();
  await shot(alice, "04-recovery-key-desktop-dark");
  await alice.setViewportSize({ width: 390, height: 844 });
  await shot(alice, "05-recovery-key-phone-dark");
  await alice.setViewportSize({ width: 1280, height: 800 });
  // no way out yet: Escape, a click outside, and Done do nothing
  await alice.keyboard.press("Escape");
  await alice.mouse.click(5, 5);
  assert.ok(await saver.isVisible(), "still shown");
  assert.ok(await alice.getByTestId("settings-dialog").isVisible(), "settings stay open under it");
  assert.ok(await alice.getByTestId("recovery-key-done").isDisabled());
  assert.ok(await alice.getByTestId("recovery-key-confirm").isDisabled(), "confirming needs a download or copy first");
  const [download] = await Promise.all([alice.waitForEvent("download"), alice.getByTestId("recovery-key-download").click()]);
  assert.equal(download.suggestedFilename(), "wspr-recovery-key.txt");
  const text = readFileSync(await download.path(), "utf8");
  assert.ok(text.includes(firstKey), "the file holds the key");
  assert.ok(text.includes(aliceId), "and names the account");
  await alice.getByTestId("recovery-key-confirm").check();
  await shot(alice, "06-recovery-key-saved");
  await alice.getByTestId("recovery-key-done").click();
  await saver.waitFor({ state: "detached" });
  await alice.getByText("Key backup on").waitFor({ timeout: 30000 });
  await alice.keyboard.press("Escape");
  await alice.getByTestId("settings-dialog").waitFor({ state: "detached" });
});

test("lost recovery key on a device that holds the secrets: a new key, nothing lost", async () => {
  await openSettings(alice, "Security & backup");
  await alice.getByTestId("lost-recovery-key-open").click();
  await alice.getByTestId("lost-recovery-key").waitFor();
  await alice.getByTestId("replace-recovery-key").waitFor({ timeout: 30000 });
  await shot(alice, "07-lost-key-replace");
  const backupBefore = (await api(env, aliceToken, "GET", "/_matrix/client/v3/room_keys/version")).version;
  await alice.getByTestId("replace-recovery-key").click();
  const saver = alice.getByTestId("recovery-key-saver");
  await saver.waitFor({ timeout: 60000 });
  const secondKey = (await saver.locator("code").textContent()).trim();
  assert.notEqual(secondKey, firstKey);
  await alice.getByTestId("recovery-key-copy").click().catch(() => {});
  // the clipboard may be unavailable headless; the download always works
  await Promise.all([alice.waitForEvent("download"), alice.getByTestId("recovery-key-download").click()]);
  await alice.getByTestId("recovery-key-confirm").check();
  await alice.getByTestId("recovery-key-done").click();
  await saver.waitFor({ state: "detached" });
  const backupAfter = (await api(env, aliceToken, "GET", "/_matrix/client/v3/room_keys/version")).version;
  assert.equal(backupAfter, backupBefore, "the same backup, under a new key");
  await alice.keyboard.press("Escape");
});

test("lost recovery key on a new device: reset, with its costs spelled out", async () => {
  const alice2 = await newPage(env, "alice2", { colorScheme: "light", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await signInInApp(env, alice2, ALICE);
  await alice2.getByTestId("open-settings").click();
  await alice2.getByRole("tab", { name: "Security & backup" }).click();
  await alice2.getByTestId("lost-recovery-key-open").click();
  const dialog = alice2.getByTestId("lost-recovery-key");
  await dialog.waitFor();
  await dialog.getByText("Older encrypted messages you can't read here now stay unreadable").waitFor();
  assert.equal(await alice2.getByTestId("replace-recovery-key").count(), 0, "a new device can't just make a new key");
  assert.ok(await alice2.getByTestId("reset-recovery").isDisabled(), "not before 'I understand'");
  await shot(alice2, "08-lost-key-reset-phone-light");
  const backupBefore = (await api(env, aliceToken, "GET", "/_matrix/client/v3/room_keys/version")).version;
  await alice2.getByTestId("reset-understood").check();
  assert.ok(await alice2.getByTestId("reset-recovery").isDisabled(), "not without the password");
  await alice2.getByTestId("reset-password").fill(PASSWORD);
  await alice2.getByTestId("reset-recovery").click();
  const saver = alice2.getByTestId("recovery-key-saver");
  await saver.waitFor({ timeout: 60000 });
  await Promise.all([alice2.waitForEvent("download"), alice2.getByTestId("recovery-key-download").click()]);
  await alice2.getByTestId("recovery-key-confirm").check();
  await alice2.getByTestId("recovery-key-done").click();
  await alice2.getByText("This device is verified").waitFor({ timeout: 30000 });
  const backupAfter = (await api(env, aliceToken, "GET", "/_matrix/client/v3/room_keys/version")).version;
  assert.notEqual(backupAfter, backupBefore, "a new backup replaced the old one");
  await alice2.context().close();
});

test("room roles, permissions, remove and ban with a reason", async () => {
  ({ room_id: roomId } = await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Admin test", preset: "private_chat", invite: [bob.userId, carol.userId] }));
  for (const p of [bob, carol]) await api(env, p.token, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, {});
  await alice.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click({ timeout: 30000 });
  await alice.getByTestId("room-settings").click();
  await alice.getByTestId("room-tab-people").click();
  const row = (userId) => alice.locator(`[data-testid=member][data-user-id="${userId}"]`);
  await row(carol.userId).waitFor({ timeout: 30000 });
  // Synapse creates v12 rooms, where the creator holds the creator level ("Owner", as Element says)
  assert.equal(await row(aliceId).getByTestId("member-role").textContent(), env.kind === "synapse" ? "Owner" : "Admin");
  // bob becomes a moderator
  await row(bob.userId).getByTestId("member-manage").click();
  await row(bob.userId).getByTestId("member-role-select").selectOption("50");
  await waitFor("bob is a moderator on the server", async () => (await state("m.room.power_levels")).users[bob.userId] === 50);
  await row(bob.userId).getByTestId("member-role").getByText("Moderator").waitFor();
  await shot(alice, "09-people-desktop-dark");
  // carol is removed, with a reason
  await row(carol.userId).getByTestId("member-manage").click();
  await row(carol.userId).getByTestId("member-reason").fill("Off topic");
  await row(carol.userId).getByTestId("member-kick").click();
  await waitFor("carol removed", async () => {
    const m = await state("m.room.member", carol.userId);
    return m.membership === "leave" && m.reason === "Off topic";
  });
  // invited back, she joins again, and is banned
  await api(env, aliceToken, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
  await api(env, carol.token, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, {});
  await row(carol.userId).getByTestId("member-manage").waitFor({ timeout: 30000 });
  await row(carol.userId).getByTestId("member-manage").click();
  await row(carol.userId).getByTestId("member-reason").fill("Spam");
  await row(carol.userId).getByTestId("member-ban").click(); // confirm() accepted by newPage
  await waitFor("carol banned", async () => {
    const m = await state("m.room.member", carol.userId);
    return m.membership === "ban" && m.reason === "Spam";
  });
  await alice.getByText("Banned · 1").waitFor();
  await shot(alice, "10-people-banned");
  await row(carol.userId).getByTestId("member-manage").click();
  await row(carol.userId).getByTestId("member-unban").click();
  await waitFor("carol unbanned", async () => (await state("m.room.member", carol.userId)).membership === "leave");

  // permissions: members may change the topic
  await alice.getByTestId("room-tab-permissions").click();
  await alice.getByTestId("perm-events.m.room.topic").selectOption("0");
  await shot(alice, "11-permissions");
  await alice.getByTestId("perm-save").click();
  await waitFor("topic open to members", async () => (await state("m.room.power_levels")).events["m.room.topic"] === 0);
  await alice.setViewportSize({ width: 390, height: 844 });
  await shot(alice, "12-permissions-phone-dark");
  await alice.setViewportSize({ width: 1280, height: 800 });
});

test("room picture, who can join, history, address, directory, invite link", async () => {
  await alice.getByTestId("room-tab-general").click();
  const png = await alice.screenshot({ clip: { x: 0, y: 0, width: 128, height: 128 } });
  await alice.getByTestId("room-avatar-input").setInputFiles({ name: "room.png", mimeType: "image/png", buffer: png });
  await waitFor("room avatar", async () => (await state("m.room.avatar")).url?.startsWith("mxc://"));
  await alice.getByText("Picture updated").waitFor();

  await alice.getByTestId("room-tab-privacy").click();
  await alice.getByTestId("join-rule-public").check();
  await waitFor("public", async () => (await state("m.room.join_rules")).join_rule === "public");
  await alice.getByTestId("history-joined").check();
  await waitFor("history joined", async () => (await state("m.room.history_visibility")).history_visibility === "joined");
  await alice.getByTestId("new-alias").fill(`admin${run}`);
  await alice.getByRole("button", { name: "Set", exact: true }).click();
  const alias = `#admin${run}:${aliceId.split(":").slice(1).join(":")}`;
  await waitFor("canonical alias", async () => (await state("m.room.canonical_alias")).alias === alias);
  await alice.getByTestId("publish-directory").check();
  await waitFor("listed", async () => (await api(env, aliceToken, "GET", `/_matrix/client/v3/directory/list/room/${enc(roomId)}`)).visibility === "public");
  await shot(alice, "13-privacy-desktop-dark");

  await alice.getByTestId("room-tab-general").click();
  const link = await alice.getByTestId("invite-link").inputValue();
  assert.equal(link, `https://matrix.to/#/${enc(alias).replace(/%3A/g, ":")}`);
  await alice.getByText("Anyone with the link can join.").waitFor();
  // the link works: carol (no longer banned) pastes it into "Join room"
  const carolPage = await newPage(env, "carol", { colorScheme: "light" });
  await signInInApp(env, carolPage, carol.userId.slice(1).split(":")[0]);
  await carolPage.getByTestId("new-chat").click();
  await carolPage.getByRole("button", { name: "Join room" }).click();
  await carolPage.getByTestId("join-alias").fill(link);
  await carolPage.getByTestId("new-chat-submit").click();
  await carolPage.getByTestId("room-title").getByText("Admin test").waitFor({ timeout: 30000 });
  await carolPage.context().close();
  await shot(alice, "14-general-desktop-dark");
});

test("room upgrade: warned, then the old room points to the new one", async () => {
  await alice.getByTestId("room-tab-advanced").click();
  const upgrade = alice.getByTestId("room-upgrade");
  await upgrade.waitFor({ timeout: 30000 });
  const current = (await alice.getByTestId("room-version").textContent()).trim().split(" ")[0];
  const options = await alice.getByTestId("upgrade-version").locator("option:not([disabled])").evaluateAll((os) => os.map((o) => o.value));
  const target = options.includes("12") && current !== "12" ? "12" : options.at(-1);
  await alice.getByTestId("upgrade-version").selectOption(target);
  assert.ok(await alice.getByTestId("upgrade-submit").isDisabled(), "not before 'I understand'");
  await alice.getByTestId("upgrade-understood").check();
  await shot(alice, "15-upgrade-warning");
  await alice.getByTestId("upgrade-submit").click();
  // the app opens the new room
  await alice.waitForFunction((old) => {
    const id = document.querySelector("[data-testid=room-view]")?.getAttribute("data-room-id");
    return id && id !== old;
  }, roomId, { timeout: 60000 });
  const newRoomId = await alice.getByTestId("room-view").getAttribute("data-room-id");
  const tomb = await state("m.room.tombstone");
  assert.equal(tomb.replacement_room, newRoomId);
  const create = await api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${enc(newRoomId)}/state/m.room.create/`);
  assert.equal(create.room_version ?? "1", target);
  // the old room: no composer, a way to the new one
  await alice.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click().catch(() => alice.evaluate((id) => (location.hash = `#/room/${encodeURIComponent(id)}`), roomId));
  await alice.getByTestId("room-replaced").waitFor({ timeout: 30000 });
  assert.equal(await alice.getByTestId("composer-input").count(), 0);
  await shot(alice, "16-room-replaced");
  await alice.getByTestId("go-to-replacement").click();
  await alice.locator(`[data-testid=room-view][data-room-id="${newRoomId}"]`).waitFor();
});

test("change password: the wrong one is refused, the new one signs in", async () => {
  await openSettings(alice, "Account");
  await alice.getByTestId("password-current").fill("not my password");
  await alice.getByTestId("password-new").fill(NEW_PASSWORD);
  await alice.getByTestId("password-again").fill(NEW_PASSWORD + "x");
  await alice.getByText("The new passwords don't match.").waitFor();
  assert.ok(await alice.getByTestId("password-submit").isDisabled());
  await alice.getByTestId("password-again").fill(NEW_PASSWORD);
  await alice.getByTestId("password-submit").click();
  await alice.getByText("Your current password is wrong.").waitFor({ timeout: 30000 });
  await alice.getByTestId("password-current").fill(PASSWORD);
  await alice.getByTestId("password-submit").click();
  await alice.getByTestId("password-changed").waitFor({ timeout: 30000 });
  await shot(alice, "17-account-desktop-dark");
  const login = (password) =>
    fetch(`${env.hs.baseUrl}/_matrix/client/v3/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: ALICE }, password }) });
  assert.equal((await login(PASSWORD)).status, 403, "the old password no longer works");
  assert.equal((await login(NEW_PASSWORD)).status, 200, "the new one does");
  // this session carries on
  assert.equal((await api(env, aliceToken, "GET", "/_matrix/client/v3/account/whoami")).user_id, aliceId);
  await alice.keyboard.press("Escape");
});

test("deactivate an account (password-confirmed, typed user ID)", async () => {
  const name = `dave${run}`;
  const dave = await newPage(env, "dave", { colorScheme: "dark", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await registerInApp(env, dave, name);
  const daveId = JSON.parse(await dave.evaluate(() => localStorage.getItem("wspr.session"))).userId;
  await openSettings(dave, "Account");
  await dave.getByTestId("deactivate-open").click();
  await dave.getByTestId("deactivate-password").fill(PASSWORD);
  assert.ok(await dave.getByTestId("deactivate-submit").isDisabled(), "needs the typed user ID");
  await dave.getByTestId("deactivate-confirm").fill(daveId);
  await dave.getByTestId("deactivate-form").scrollIntoViewIfNeeded();
  await dave.screenshot({ path: join(ART, `${env.kind}-admin-18-deactivate-phone-dark.png`) });
  await dave.getByTestId("deactivate-submit").click();
  await dave.getByRole("button", { name: "Sign in", exact: true }).waitFor({ timeout: 60000 });
  const r = await fetch(`${env.hs.baseUrl}/_matrix/client/v3/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: name }, password: PASSWORD }) });
  assert.equal(r.status, 403, "a deactivated account can't sign in");
  await dave.context().close();
});

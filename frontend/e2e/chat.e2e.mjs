// End-to-end: two people in two browsers, an encrypted DM, on a real homeserver.
//   E2E_HOMESERVER=synapse|wspr (default wspr)   E2E_KEEP=1 keeps the work dir   CHROMIUM=/usr/bin/chromium
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, appendFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { frontendDir, makeWorkDir, removeWorkDir, startStatic, startSynapse, startWspr, distDir } from "./servers.mjs";

const HS = process.env.E2E_HOMESERVER || "wspr";
const ART = join(frontendDir, "test-artifacts");
const PASSWORD = "correct horse battery staple";
const run = Date.now().toString(36).slice(-5);
const ALICE = `alice${run}`;
const BOB = `bob${run}`;
const CAROL = `carol${run}`;

let workDir, hs, web, browser, appUrl;
const ctx = {};
const pages = {};
let dmRoomId;

mkdirSync(ART, { recursive: true });
const consoleLog = join(ART, `console-${HS}.log`);
writeFileSync(consoleLog, "");

async function shot(page, name) {
  await page.screenshot({ path: join(ART, `${HS}-${name}.png`) });
}

async function newPerson(name, opts) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("console", (m) => {
    if (process.env.E2E_VERBOSE || m.type() === "error" || m.type() === "warning" || m.text().startsWith("[wspr]")) appendFileSync(consoleLog, `[${name}] ${m.type()}: ${m.text()}\n`);
  });
  page.on("pageerror", (e) => appendFileSync(consoleLog, `[${name}] pageerror: ${e.message}\n`));
  // window.prompt asks for the account password (UIA); window.confirm guards destructive actions
  page.on("dialog", (d) => d.accept(d.type() === "prompt" ? PASSWORD : undefined));
  ctx[name] = context;
  pages[name] = page;
  return page;
}

async function signIn(page, username) {
  await page.goto(appUrl);
  await page.locator('input[name="homeserver"]').fill(hs.baseUrl);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });
}

function message(page, text) {
  return page.locator("[data-testid=message]", { has: page.locator("[data-testid=message-body]", { hasText: text }) });
}

async function messageAction(page, text, action) {
  const m = message(page, text).last();
  await m.hover();
  await m.getByRole("button", { name: action, exact: true }).click();
}

async function register(page, username, screenshotName) {
  await page.goto(appUrl);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.locator('input[name="homeserver"]').fill(hs.baseUrl);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.locator('input[name="confirm"]').fill(PASSWORD);
  if (screenshotName) await shot(page, screenshotName);
  await page.getByRole("button", { name: "Create account", exact: true }).click();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });
}

async function accessToken(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem("wspr.session")).accessToken);
}

async function openRoom(page, roomId) {
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click();
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
}

async function send(page, text) {
  const input = page.getByTestId("composer-input");
  await input.fill(text);
  await input.press("Enter");
}

/** The new recovery key can't be dismissed before it is saved: download it, confirm, done. */
async function saveRecoveryKey(page) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("recovery-key-download").click()]);
  assert.equal(download.suggestedFilename(), "wspr-recovery-key.txt");
  await page.getByTestId("recovery-key-confirm").check();
  await page.getByTestId("recovery-key-done").click();
  await page.getByTestId("recovery-key-saver").waitFor({ state: "detached" });
}

function messageWithText(page, text) {
  return page.locator("[data-testid=message-body]", { hasText: text });
}

before(async () => {
  workDir = makeWorkDir();
  hs = HS === "synapse" ? await startSynapse(workDir) : await startWspr(workDir);
  appUrl = hs.appUrl;
  if (!appUrl) {
    web = await startStatic(distDir);
    appUrl = web.url;
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
  });
  console.log(`# homeserver ${HS} at ${hs.baseUrl}, app at ${appUrl}`);
});

after(async () => {
  await browser?.close().catch(() => {});
  await web?.stop().catch(() => {});
  await hs?.stop().catch(() => {});
  if (hs?.logFile) {
    try {
      copyFileSync(hs.logFile, join(ART, `${HS}-server.log`));
    } catch {}
  }
  if (process.env.E2E_KEEP) console.log(`# kept ${workDir}`);
  else if (workDir) removeWorkDir(workDir);
});

test("alice and bob create accounts; an empty account says what to do next", async () => {
  const alice = await newPerson("alice", { colorScheme: "light" });
  const bob = await newPerson("bob", { colorScheme: "dark" });
  await Promise.all([register(alice, ALICE, "01-register"), register(bob, BOB)]);
  // a new account's first sync is done: not "Loading" forever, but the ways in
  for (const p of [alice, bob]) {
    await p.getByTestId("rooms-empty").waitFor({ timeout: 30000 });
    assert.equal(await p.getByTestId("rooms-loading").count(), 0);
    assert.equal(await p.getByTestId("room-list").getAttribute("data-ready"), "true");
  }
  for (const id of ["empty-start-chat", "empty-join-room", "empty-explore"]) assert.ok(await alice.getByTestId(id).isVisible(), id);
  await shot(alice, "02-empty-room-list");
  await bob.setViewportSize({ width: 390, height: 844 });
  await shot(bob, "02b-empty-room-list-phone-dark");
  await bob.setViewportSize({ width: 1280, height: 800 });
  // each way in opens the right tab of the new-chat dialog
  await alice.getByTestId("empty-join-room").click();
  await alice.getByTestId("join-alias").waitFor();
  await alice.keyboard.press("Escape");
  await alice.getByTestId("empty-start-chat").click();
  await alice.getByTestId("dm-user").waitFor();
  await alice.keyboard.press("Escape");
});

test("alice starts an encrypted DM and bob accepts it", async () => {
  const { alice, bob } = pages;
  await alice.getByTestId("new-chat").click();
  await alice.getByTestId("dm-user").fill(`@${BOB}:localhost`);
  await shot(alice, "03-new-chat-dialog");
  await alice.getByTestId("new-chat-submit").click();
  const view = alice.getByTestId("room-view");
  await view.waitFor();
  dmRoomId = await view.getAttribute("data-room-id");
  assert.ok(dmRoomId?.startsWith("!"), "room id");

  const invite = bob.locator(`[data-testid=room-row][data-room-id="${dmRoomId}"]`);
  await invite.getByTestId("accept-invite").waitFor({ timeout: 30000 });
  await shot(bob, "04-invite");
  await invite.getByTestId("accept-invite").click();
  await invite.getByTestId("accept-invite").waitFor({ state: "detached" });
  await openRoom(bob, dmRoomId);
  await bob.getByTestId("composer-input").waitFor();
});

test("messages go both ways and are decrypted", async () => {
  const { alice, bob } = pages;
  await send(alice, "Hi Bob! This is **end-to-end encrypted** 🔐");
  await messageWithText(bob, "This is end-to-end encrypted").waitFor({ timeout: 30000 });
  assert.equal(await bob.locator("[data-testid=message-body] strong", { hasText: "end-to-end encrypted" }).count(), 1, "markdown rendered as bold");

  await send(bob, "Hey Alice, got it loud and clear.");
  await messageWithText(alice, "got it loud and clear").waitFor({ timeout: 30000 });
  await send(alice, "Great. Sending you a picture next.");
  await messageWithText(bob, "Sending you a picture next").waitFor();
  assert.equal(await bob.getByTestId("utd").count(), 0, "no undecryptable messages");
  assert.equal(await alice.getByTestId("utd").count(), 0, "no undecryptable messages");
});

test("an image is sent encrypted and shown", async () => {
  const { alice, bob } = pages;
  // any PNG will do: a screenshot of alice's own screen
  const png = await alice.screenshot({ clip: { x: 0, y: 0, width: 480, height: 300 } });
  await alice.getByTestId("file-input").setInputFiles({ name: "screenshot.png", mimeType: "image/png", buffer: png });
  // files wait in the composer, previewed, until Send
  await alice.locator("[data-testid=attachment] img").waitFor();
  await alice.getByTestId("send").click();
  const img = bob.locator("[data-testid=image] img");
  await img.waitFor({ timeout: 30000 });
  await bob.waitForFunction((el) => el.complete && el.naturalWidth === 480, await img.elementHandle());
  await alice.locator("[data-testid=image] img").waitFor();
  // and a plain file, downloaded and decrypted on the other side
  await alice.getByTestId("file-input").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("meeting at noon\n") });
  await alice.getByTestId("send").click();
  const card = bob.locator(".file-card", { hasText: "notes.txt" });
  await card.getByRole("button", { name: "Download" }).click({ timeout: 30000 });
  const href = await card.getByRole("link", { name: "Save" }).getAttribute("href");
  assert.equal(await bob.evaluate((u) => fetch(u).then((r) => r.text()), href), "meeting at noon\n");
  await shot(alice, "05-conversation-desktop-light");
  await shot(bob, "06-conversation-desktop-dark");
});

test("the server only ever saw ciphertext", async () => {
  const token = await accessToken(pages.alice);
  const res = await fetch(`${hs.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(dmRoomId)}/messages?dir=b&limit=100`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  const { chunk } = await res.json();
  const types = chunk.map((e) => e.type);
  assert.ok(!types.includes("m.room.message"), `plaintext message events on the server: ${types.join(",")}`);
  const encrypted = chunk.filter((e) => e.type === "m.room.encrypted");
  assert.ok(encrypted.length >= 5, `expected >= 5 m.room.encrypted events, got ${encrypted.length}`);
  for (const e of encrypted) assert.equal(e.content.algorithm, "m.megolm.v1.aes-sha2");
  assert.ok(types.includes("m.room.encryption"), "room has m.room.encryption state");
});

test("reply, edit, react and delete", async () => {
  const { alice, bob } = pages;
  await messageAction(alice, "got it loud and clear", "Reply");
  await send(alice, "Replying to you");
  await message(bob, "Replying to you").locator(".reply-quote", { hasText: "got it loud and clear" }).waitFor();

  await send(alice, "This has a tpyo");
  await messageWithText(bob, "This has a tpyo").waitFor();
  await messageAction(alice, "This has a tpyo", "Edit");
  const input = alice.getByTestId("composer-input");
  await input.fill("This had a typo");
  await input.press("Enter");
  await message(bob, "This had a typo").locator(".edited").waitFor();
  assert.equal(await messageWithText(bob, "This has a tpyo").count(), 0);

  await messageAction(bob, "Replying to you", "React");
  await bob.locator(".reaction-picker button", { hasText: "👍" }).click();
  await message(alice, "Replying to you").locator(".reaction", { hasText: "👍" }).waitFor();

  await send(bob, "Oops, wrong chat");
  await messageWithText(alice, "Oops, wrong chat").waitFor();
  await messageAction(bob, "Oops, wrong chat", "Delete");
  await alice.locator("[data-testid=message-body]", { hasText: "Message deleted" }).waitFor();
  assert.equal(await messageWithText(alice, "Oops, wrong chat").count(), 0);
});

test("typing indicators and read receipts", async () => {
  const { alice, bob } = pages;
  await bob.getByTestId("composer-input").fill("I'm typing something long");
  await alice.getByTestId("typing").getByText("is typing").waitFor({ timeout: 20000 });
  await bob.getByTestId("composer-input").press("Enter");
  await messageWithText(alice, "I'm typing something long").waitFor();
  await send(alice, "Did you read this?");
  await messageWithText(bob, "Did you read this?").waitFor();
  // bob has the room open, so he sends a read receipt; alice sees his avatar under her message
  await message(alice, "Did you read this?").locator(".receipts").waitFor({ timeout: 20000 });
  await shot(alice, "05b-conversation-features");
});

test("bob reloads and still sees the history", async () => {
  const { bob } = pages;
  await bob.reload();
  await bob.getByTestId("room-view").waitFor({ timeout: 60000 });
  await messageWithText(bob, "This is end-to-end encrypted").waitFor({ timeout: 30000 });
  await messageWithText(bob, "got it loud and clear").waitFor();
  await bob.locator("[data-testid=image] img").waitFor();
  assert.equal(await bob.getByTestId("utd").count(), 0);
});

test("phone-sized screens show one pane at a time", async () => {
  const { bob } = pages;
  await bob.setViewportSize({ width: 390, height: 844 });
  await shot(bob, "07-phone-conversation-dark");
  await bob.getByRole("button", { name: "Back to rooms" }).click();
  await bob.getByTestId("room-list").waitFor();
  await shot(bob, "08-phone-room-list-dark");
  await bob.setViewportSize({ width: 1280, height: 800 });
  await openRoom(bob, dmRoomId);
});

test("settings: profile, security and devices", async () => {
  const { alice } = pages;
  await alice.getByTestId("open-settings").click();
  await alice.getByTestId("settings-dialog").waitFor();
  await alice.getByTestId("display-name").fill("Alice");
  await alice.getByRole("button", { name: "Save" }).click();
  await alice.getByText("Display name saved").waitFor();
  const avatarPng = await alice.screenshot({ clip: { x: 20, y: 20, width: 96, height: 96 } });
  await alice.locator('[data-testid=settings-dialog] input[type=file]').setInputFiles({ name: "me.png", mimeType: "image/png", buffer: avatarPng });
  await alice.getByText("Picture updated").waitFor({ timeout: 30000 });
  await alice.locator("[data-testid=settings-dialog] .avatar img").first().waitFor();
  await shot(alice, "09-settings-profile");
  await alice.getByRole("tab", { name: "Security & backup" }).click();
  await alice.getByTestId("security-tab").waitFor();
  await shot(alice, "10-settings-security");
  await alice.getByRole("tab", { name: "Devices" }).click();
  await alice.getByTestId("devices-tab").waitFor();
  await shot(alice, "11-settings-devices");
  await alice.keyboard.press("Escape");
});

test("group rooms: create, invite, rename, join by address, leave", async () => {
  const { alice, bob } = pages;
  await alice.getByTestId("new-chat").click();
  await alice.getByRole("button", { name: "New room" }).click();
  await alice.getByTestId("room-name").fill("Team WSPR");
  await alice.getByTestId("new-chat-submit").click();
  const view = alice.getByTestId("room-view");
  await alice.getByTestId("room-title").getByText("Team WSPR").waitFor();
  const roomId = await view.getAttribute("data-room-id");
  await alice.getByTestId("room-settings").click();
  await alice.getByTestId("invite-user").fill(`@${BOB}:localhost`);
  await alice.getByRole("button", { name: "Invite", exact: true }).click();
  await alice.getByText(`Invited @${BOB}:localhost`).waitFor();
  await alice.getByTestId("room-settings-topic").fill("Where the team talks");
  await alice.getByRole("button", { name: "Save" }).click();
  await alice.getByText("Saved").waitFor();
  await shot(alice, "14-room-settings");
  await alice.keyboard.press("Escape");

  const row = bob.locator(`[data-testid=room-row][data-room-id="${roomId}"]`);
  await row.getByTestId("accept-invite").click();
  await row.getByTestId("accept-invite").waitFor({ state: "detached" });
  await openRoom(bob, roomId);
  await bob.getByText("Where the team talks").first().waitFor();
  await send(bob, "Hello team");
  await messageWithText(alice, "Hello team").waitFor();

  // a public room joined by its address
  await alice.getByTestId("new-chat").click();
  await alice.getByRole("button", { name: "New room" }).click();
  await alice.getByTestId("room-name").fill("Lobby");
  await alice.getByTestId("room-public").check();
  await alice.getByTestId("room-alias").fill(`lobby${run}`);
  await alice.getByTestId("new-chat-submit").click();
  await alice.getByTestId("room-title").getByText("Lobby").waitFor();
  // one member: singular
  await alice.locator(".room-title", { hasText: /· 1 member$/ }).waitFor();
  await bob.getByTestId("new-chat").click();
  await bob.getByRole("button", { name: "Join room" }).click();
  await bob.getByTestId("join-alias").fill(`#lobby${run}:localhost`);
  await bob.getByTestId("new-chat-submit").click();
  await bob.getByTestId("room-title").getByText("Lobby").waitFor();

  // a third person, new here, finds the public room from the empty state's directory link
  const carol = await newPerson("carol", { colorScheme: "light", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await register(carol, CAROL);
  await carol.getByTestId("empty-explore").click();
  await carol.getByTestId("explore").waitFor();
  await carol.getByTestId("explore-search").fill("Lobby");
  const listed = carol.locator("[data-testid=explore-room]", { hasText: "Lobby" });
  await listed.waitFor({ timeout: 30000 });
  assert.match(await listed.locator(".explore-text .muted").textContent(), /^2 members · #lobby/);
  await shot(carol, "14b-explore-phone");
  await listed.getByRole("button", { name: "Join" }).click();
  await carol.getByTestId("room-title").getByText("Lobby").waitFor({ timeout: 30000 });
  await carol.locator(".room-title", { hasText: "3 members" }).waitFor({ timeout: 30000 });
  await ctx.carol.close();

  // leaving removes the room from the list
  await openRoom(bob, roomId);
  await bob.getByTestId("room-settings").click();
  await bob.getByRole("button", { name: "Leave room" }).click();
  await row.waitFor({ state: "detached" });
  await openRoom(bob, dmRoomId);
});

test("the app shell loads offline", async () => {
  const { bob } = pages;
  const controlled = await bob.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    return !!reg.active;
  });
  assert.ok(controlled, "service worker active");
  // make sure this page is controlled by the worker before cutting the network
  await bob.reload();
  await bob.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30000 });
  await bob.getByTestId("room-view").waitFor({ timeout: 60000 });
  // the worker serves app navigations, but never the homeserver's own paths
  const probe = await ctx.bob.newPage();
  for (const path of ["_matrix/client/versions", "_synapse/admin/v1/server_version", ".well-known/matrix/client"]) {
    const res = await probe.goto(new URL(path, appUrl).href);
    assert.equal(res.fromServiceWorker(), false, `${path} must reach the server`);
  }
  const shell = await probe.goto(new URL("some/deep/link", appUrl).href);
  assert.equal(shell.fromServiceWorker(), true, "app navigations come from the precached shell");
  await probe.close();
  // the manifest makes it installable
  const manifest = await (await fetch(new URL("manifest.webmanifest", appUrl))).json();
  assert.equal(manifest.display, "standalone");
  assert.ok(manifest.icons.some((i) => i.sizes === "512x512"));
  await ctx.bob.setOffline(true);
  try {
    await bob.reload();
    await bob.locator("#root > *").first().waitFor({ timeout: 30000 });
    // Either the full UI from the on-device cache, or (while matrix-js-sdk insists on reaching the server at
    // start-up, e.g. within 24 h of accepting an invite) the app's offline screen. Both are the app shell.
    await bob.locator(".app, [data-testid=splash]").first().waitFor({ timeout: 30000 });
    if (await bob.locator(".app").count()) {
      await bob.getByTestId("offline-banner").waitFor({ timeout: 30000 });
      await messageWithText(bob, "got it loud and clear").waitFor({ timeout: 30000 });
    } else {
      await bob.getByText("You're offline").waitFor();
    }
    await shot(bob, "12-offline");
    assert.equal(await bob.title(), "WSPR");
  } finally {
    await ctx.bob.setOffline(false);
  }
  // back online: the app finishes starting by itself
  await bob.locator(".app").waitFor({ timeout: 60000 });
  await messageWithText(bob, "got it loud and clear").waitFor({ timeout: 30000 });
});

test("offline, a device with cached state shows its rooms and history", async () => {
  const { alice } = pages;
  await alice.waitForTimeout(3500); // the sync cache is written a few seconds after a sync
  await alice.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30000 });
  await ctx.alice.setOffline(true);
  try {
    await alice.reload();
    await alice.locator(".app, [data-testid=splash]").first().waitFor({ timeout: 30000 });
    await alice.locator(".app").waitFor({ timeout: 15000 });
    await alice.getByTestId("offline-banner").waitFor();
    await openRoom(alice, dmRoomId);
    await messageWithText(alice, "Did you read this?").waitFor({ timeout: 30000 });
    await shot(alice, "13-offline-cached");
  } finally {
    await ctx.alice.setOffline(false);
  }
});

let recoveryKey;

test("alice sets up cross-signing and secure backup", async () => {
  const { alice } = pages;
  await openRoom(alice, dmRoomId);
  await alice.getByTestId("open-settings").click();
  await alice.getByRole("tab", { name: "Security & backup" }).click();
  await alice.getByTestId("setup-recovery").click();
  const box = alice.getByTestId("new-recovery-key");
  await box.waitFor({ timeout: 60000 });
  recoveryKey = (await box.locator("code").textContent()).trim();
  assert.match(recoveryKey, /^[1-9A-HJ-NP-Za-km-z]{4}( [1-9A-HJ-NP-Za-km-z]{4}){11}$/);
  await shot(alice, "15-recovery-key");
  await saveRecoveryKey(alice);
  await alice.keyboard.press("Escape");
  // wait until this device's room keys are in the server-side backup
  const token = await accessToken(alice);
  const auth = { headers: { Authorization: `Bearer ${token}` } };
  const deadline = Date.now() + 60000;
  for (;;) {
    const v = await (await fetch(`${hs.baseUrl}/_matrix/client/v3/room_keys/version`, auth)).json();
    if (v.version) {
      const keys = await (await fetch(`${hs.baseUrl}/_matrix/client/v3/room_keys/keys?version=${v.version}`, auth)).json();
      if (keys.rooms?.[dmRoomId]) break;
    }
    assert.ok(Date.now() < deadline, "room keys never reached the backup");
    await new Promise((r) => setTimeout(r, 500));
  }
});

test("on a new login, the recovery key restores the history", async () => {
  const alice2 = await newPerson("alice2", { colorScheme: "light" });
  await signIn(alice2, ALICE);
  await openRoom(alice2, dmRoomId);
  await alice2.getByTestId("utd").first().waitFor({ timeout: 30000 });
  await shot(alice2, "16-new-login-undecryptable");
  await alice2.getByTestId("open-settings").click();
  await alice2.getByRole("tab", { name: "Security & backup" }).click();
  await alice2.getByTestId("recovery-key-input").fill(recoveryKey);
  await alice2.getByTestId("restore-submit").click();
  await alice2.getByTestId("restore-result").waitFor({ timeout: 60000 });
  await alice2.getByText("This device is verified").waitFor({ timeout: 30000 });
  await shot(alice2, "17-restored");
  await alice2.keyboard.press("Escape");
  await messageWithText(alice2, "got it loud and clear").waitFor({ timeout: 30000 });
  await messageWithText(alice2, "This is end-to-end encrypted").waitFor({ timeout: 30000 });
});

test("a new device is verified with emoji (SAS) from another session", async () => {
  const { alice } = pages;
  const alice3 = await newPerson("alice3", { colorScheme: "dark" });
  await signIn(alice3, ALICE);
  await alice3.getByTestId("open-settings").click();
  await alice3.getByRole("tab", { name: "Security & backup" }).click();
  await alice3.getByRole("button", { name: "Verify with another device instead" }).click();
  await alice3.getByTestId("verification-dialog").waitFor();
  await alice.getByTestId("verification-accept").click({ timeout: 30000 });
  const e1 = alice.getByTestId("sas-emoji");
  const e3 = alice3.getByTestId("sas-emoji");
  await e1.waitFor({ timeout: 30000 });
  await e3.waitFor({ timeout: 30000 });
  assert.equal(await e1.textContent(), await e3.textContent(), "both devices show the same emoji");
  await shot(alice3, "18-sas-emoji");
  await alice.getByTestId("sas-match").click();
  await alice3.getByTestId("sas-match").click();
  await alice.getByText("✅ Verified").waitFor({ timeout: 30000 });
  await alice3.getByText("✅ Verified").waitFor({ timeout: 30000 });
  await alice.getByRole("button", { name: "Done" }).click();
  await alice3.getByRole("button", { name: "Done" }).click();
});

test("unread badges, sorted by activity", async () => {
  const { alice, bob } = pages;
  const lobby = bob.locator("[data-testid=room-row]", { hasText: "Lobby" });
  await lobby.locator(".room-row-main").click();
  await bob.getByTestId("room-title").getByText("Lobby").waitFor();
  await openRoom(alice, dmRoomId);
  await send(alice, "Ping while you're elsewhere");
  const dmRow = bob.locator(`[data-testid=room-row][data-room-id="${dmRoomId}"]`);
  await dmRow.locator(".badge").waitFor({ timeout: 30000 });
  await dmRow.getByText("Ping while you're elsewhere").waitFor();
  // most recent activity first
  assert.equal(await bob.locator("[data-testid=room-row]").first().getAttribute("data-room-id"), dmRoomId);
  await shot(bob, "19-unread-badge");
  await openRoom(bob, dmRoomId);
  await dmRow.locator(".badge").waitFor({ state: "detached", timeout: 30000 });
});

test("alice verifies bob with emoji in their DM", async () => {
  const { alice, bob } = pages;
  // bob needs a cross-signing identity to be verified as a person
  await bob.getByTestId("open-settings").click();
  await bob.getByRole("tab", { name: "Security & backup" }).click();
  await bob.getByTestId("setup-recovery").click();
  await bob.getByTestId("new-recovery-key").waitFor({ timeout: 60000 });
  await saveRecoveryKey(bob);
  await bob.keyboard.press("Escape");

  await openRoom(alice, dmRoomId);
  await alice.getByTestId("room-settings").click();
  await alice.getByTestId("room-tab-people").click();
  await alice.getByTestId("verify-user").click();
  await alice.getByTestId("verification-dialog").waitFor();
  await bob.getByTestId("verification-accept").click({ timeout: 30000 });
  const ea = alice.getByTestId("sas-emoji");
  const eb = bob.getByTestId("sas-emoji");
  await ea.waitFor({ timeout: 30000 });
  await eb.waitFor({ timeout: 30000 });
  assert.equal(await ea.textContent(), await eb.textContent());
  await bob.getByTestId("sas-match").click();
  await alice.getByTestId("sas-match").click();
  await alice.getByText("✅ Verified").waitFor({ timeout: 30000 });
  await bob.getByText("✅ Verified").waitFor({ timeout: 30000 });
  await alice.getByRole("button", { name: "Done" }).click();
  await bob.getByRole("button", { name: "Done" }).click();
  await alice.getByTestId("room-trust").getByText("verified").waitFor({ timeout: 30000 });
  await shot(alice, "20-verified-dm");
});

test("sign out another device (password-confirmed)", async () => {
  const { alice } = pages;
  const token3 = await accessToken(pages.alice3);
  await alice.getByTestId("open-settings").click();
  await alice.getByRole("tab", { name: "Devices" }).click();
  const rows = alice.locator(".device-list li");
  await rows.nth(2).waitFor();
  const before = await rows.count();
  const device3 = await pages.alice3.evaluate(() => JSON.parse(localStorage.getItem("wspr.session")).deviceId);
  await alice.locator(".device-list li", { hasText: device3 }).getByRole("button", { name: "Sign out" }).click();
  await alice.locator(".device-list li", { hasText: device3 }).waitFor({ state: "detached", timeout: 30000 });
  assert.equal(await rows.count(), before - 1);
  const who = await fetch(`${hs.baseUrl}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${token3}` } });
  assert.equal(who.status, 401, "the signed-out device's token no longer works");
  await alice.keyboard.press("Escape");
  // the signed-out session notices and goes back to the sign-in screen
  await pages.alice3.getByRole("button", { name: "Sign in", exact: true }).waitFor({ timeout: 60000 });
});

test("sign out, wrong password, sign in again", async () => {
  const { bob } = pages;
  await bob.getByTestId("open-settings").click();
  await bob.getByTestId("logout").click();
  await bob.getByRole("button", { name: "Sign in", exact: true }).waitFor({ timeout: 30000 });
  await bob.locator('input[name="homeserver"]').fill("http://127.0.0.1:9");
  await bob.locator('input[name="username"]').fill(BOB);
  await bob.locator('input[name="password"]').fill("not my password");
  await bob.getByRole("button", { name: "Sign in", exact: true }).click();
  await bob.getByText("Can't reach the server").waitFor();
  await bob.locator('input[name="homeserver"]').fill(hs.baseUrl);
  await bob.getByRole("button", { name: "Sign in", exact: true }).click();
  await bob.getByText("Wrong username or password").waitFor();
  await shot(bob, "21-wrong-password");
  await bob.locator('input[name="password"]').fill(PASSWORD);
  await bob.getByRole("button", { name: "Sign in", exact: true }).click();
  await bob.getByTestId("room-list").waitFor({ timeout: 60000 });
  await bob.locator(`[data-testid=room-row][data-room-id="${dmRoomId}"]`).waitFor({ timeout: 30000 });
});

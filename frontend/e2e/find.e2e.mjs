// Finding things on a real homeserver (WSPR, or Synapse with E2E_HOMESERVER=synapse): starting a DM by
// searching the user directory; the public room directory paged with "More rooms", and asked of a
// named server (`server`); message search by the server in an unencrypted room and by this device's own
// index in an encrypted one (kept across a reload; the server can't find those), in one room or all,
// results opening the message; the Ctrl+K room switcher.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerApi, registerInApp, startEnvironment } from "./browser.mjs";

const run = Date.now().toString(36).slice(-5);
const enc = encodeURIComponent;
const LOBBIES = 35;
let env, alice, bob, aliceToken, bobToken, bobId, carol, serverName, plaza, secret;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-find-${name}.png`) });
const roomView = (page) => page.getByTestId("room-view");

async function openRoom(page, roomId) {
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click({ timeout: 30000 });
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
}

async function send(page, text) {
  const input = roomView(page).getByTestId("composer-input");
  await input.fill(text);
  await input.press("Enter");
}

/** Waits for `count` search results; on a timeout, says what the panel and the timeline showed. */
async function expectResults(page, count, timeout = 30000) {
  try {
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=search-result]").length === n, count, { timeout });
  } catch (e) {
    const seen = await page.evaluate(() => ({
      results: [...document.querySelectorAll("[data-testid=search-result]")].map((x) => x.textContent),
      coverage: document.querySelector("[data-testid=search-coverage]")?.textContent ?? null,
      timeline: [...document.querySelectorAll("[data-testid=room-view] [data-testid=message-body]")].map((x) => x.textContent),
    }));
    throw new Error(`expected ${count} search results: ${e.message}\n${JSON.stringify(seen)}`, { cause: e });
  }
}

async function say(token, roomId, body) {
  const txn = `${Date.now()}-${Math.random()}`;
  return (await api(env, token, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${enc(txn)}`, { msgtype: "m.text", body })).event_id;
}

before(async () => {
  env = await startEnvironment({ name: "find" });
  alice = await newPage(env, "alice", { colorScheme: "light" });
  bob = await newPage(env, "bob", { colorScheme: "dark" });
  await Promise.all([registerInApp(env, alice, `alice${run}`), registerInApp(env, bob, `bob${run}`)]);
  [aliceToken, bobToken] = await Promise.all([accessToken(alice), accessToken(bob)]);
  bobId = (await api(env, bobToken, "GET", "/_matrix/client/v3/account/whoami")).user_id;
  serverName = bobId.split(":").slice(1).join(":");
  carol = await registerApi(env, `carol${run}`);
  await api(env, carol.token, "PUT", `/_matrix/client/v3/profile/${enc(carol.userId)}/displayname`, { displayname: "Carol Directory" });
  // public rooms for the directory (Synapse's user directory also lists the people in them)
  for (let i = 1; i <= LOBBIES; i++) {
    const name = `Lobby ${String(i).padStart(2, "0")} ${run}`;
    const { room_id } = await api(env, bobToken, "POST", "/_matrix/client/v3/createRoom", { name, preset: "public_chat", visibility: "public", topic: `Public room number ${i}` });
    if (i === 1) await api(env, carol.token, "POST", `/_matrix/client/v3/join/${enc(room_id)}`, {});
  }
  ({ room_id: plaza } = await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Open plaza", preset: "public_chat" }));
  await api(env, bobToken, "POST", `/_matrix/client/v3/join/${enc(plaza)}`, {});
});

after(async () => {
  await env?.stop();
});

test("start a DM by searching the user directory", async () => {
  await alice.getByTestId("new-chat").click();
  await alice.getByTestId("dm-user").fill("Carol Dir");
  const person = alice.locator(`[data-testid=person][data-user-id="${carol.userId}"]`);
  await person.waitFor({ timeout: 30000 });
  await person.getByText("Carol Directory").waitFor();
  await shot(alice, "01-people-desktop-light");
  await person.click();
  await roomView(alice).waitFor();
  const dm = await roomView(alice).getAttribute("data-room-id");
  const member = await api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${enc(dm)}/state/m.room.member/${enc(carol.userId)}`);
  assert.equal(member.membership, "invite");
  assert.equal(member.is_direct, true);
  const encryption = await api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${enc(dm)}/state/m.room.encryption/`);
  assert.equal(encryption.algorithm, "m.megolm.v1.aes-sha2");
});

test("the public room directory: pages with 'More rooms', and a named server's", async () => {
  await bob.getByTestId("new-chat").click();
  await bob.getByRole("button", { name: "Explore" }).click();
  await bob.getByTestId("explore-search").fill(run);
  const rows = bob.getByTestId("explore-room");
  await bob.getByTestId("explore-more").waitFor({ timeout: 30000 });
  assert.equal(await rows.count(), 30, "the first page");
  await shot(bob, "02-explore-desktop-dark");
  await bob.getByTestId("explore-more").click();
  await bob.waitForFunction((n) => document.querySelectorAll("[data-testid=explore-room]").length === n, LOBBIES, { timeout: 30000 });
  assert.equal(await bob.getByTestId("explore-more").count(), 0, "no more after the last page");
  const names = await rows.locator("strong").allTextContents();
  assert.equal(new Set(names).size, LOBBIES, "each room once");
  // another server's directory: asked with `server` (here the server names itself)
  const asked = bob.waitForRequest((r) => r.url().includes("/publicRooms") && new URL(r.url()).searchParams.get("server") === serverName);
  await bob.getByTestId("explore-server").fill(serverName);
  await asked;
  await rows.first().waitFor({ timeout: 30000 });
  await bob.keyboard.press("Escape");
  // alice, on a phone, joins one
  await alice.setViewportSize({ width: 390, height: 844 });
  await alice.getByRole("button", { name: "Back to rooms" }).click();
  await alice.getByTestId("new-chat").click();
  await alice.getByRole("button", { name: "Explore" }).click();
  await alice.getByTestId("explore-search").fill(`Lobby 07 ${run}`);
  const lobby = alice.locator("[data-testid=explore-room]", { hasText: `Lobby 07 ${run}` });
  await lobby.waitFor({ timeout: 30000 });
  await shot(alice, "03-explore-phone-light");
  await lobby.getByRole("button", { name: "Join" }).click();
  await alice.getByTestId("room-title").getByText(`Lobby 07 ${run}`).waitFor({ timeout: 30000 });
  await alice.setViewportSize({ width: 1280, height: 800 });
});

test("message search: the server's in an unencrypted room, with a jump to the message", async () => {
  const words = ["Morning everyone", "The quick brown fox jumps over the lazy dog", "Lunch at one?", "Brown bread or white?", "See you later"];
  const ids = [];
  for (const w of words) ids.push(await say(bobToken, plaza, w));
  // plenty after it, so the match is off screen when the search starts
  for (let i = 0; i < 40; i++) await say(bobToken, plaza, `Filler message ${i}`);
  await openRoom(alice, plaza);
  await roomView(alice).locator("[data-testid=message-body]", { hasText: "Filler message 39" }).waitFor({ timeout: 30000 });
  await alice.getByTestId("open-search").click();
  await alice.getByTestId("search-input").fill("brown fox");
  await alice.getByTestId("search-input").press("Enter");
  const result = alice.getByTestId("search-result");
  await result.first().waitFor({ timeout: 30000 });
  assert.equal(await result.count(), 1, "both words must match");
  assert.equal(await result.first().getAttribute("data-event-id"), ids[1]);
  await result.first().locator("mark", { hasText: "brown" }).waitFor();
  await shot(alice, "04-search-server-desktop-light");
  await result.first().click();
  const target = roomView(alice).locator(`[data-event-id="${ids[1]}"]`);
  await target.waitFor({ timeout: 30000 });
  await alice.waitForFunction((id) => {
    const el = document.querySelector(`[data-testid=room-view] [data-event-id="${id}"]`);
    const box = document.querySelector("[data-testid=timeline]").getBoundingClientRect();
    const r = el?.getBoundingClientRect();
    return r && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
  }, ids[1], { timeout: 30000 });
  // "brown" alone: both messages, newest first
  await alice.getByTestId("search-input").fill("brown");
  await alice.getByTestId("search-input").press("Enter");
  await alice.waitForFunction(() => document.querySelectorAll("[data-testid=search-result]").length === 2, null, { timeout: 30000 });
  assert.equal(await result.first().getAttribute("data-event-id"), ids[3]);
  await alice.getByTestId("panel-close").click();
});

test("message search in an encrypted room: this device's index, kept across a reload", async () => {
  await alice.getByTestId("new-chat").click();
  await alice.getByRole("button", { name: "New room" }).click();
  await alice.getByTestId("room-name").fill("Vault");
  await alice.getByTestId("new-chat-submit").click();
  await alice.getByTestId("room-title").getByText("Vault").waitFor();
  secret = await roomView(alice).getAttribute("data-room-id");
  await api(env, aliceToken, "POST", `/_matrix/client/v3/rooms/${enc(secret)}/invite`, { user_id: bobId });
  const row = bob.locator(`[data-testid=room-row][data-room-id="${secret}"]`);
  await row.getByTestId("accept-invite").click({ timeout: 30000 });
  await row.getByTestId("accept-invite").waitFor({ state: "detached" });
  await openRoom(bob, secret);
  await send(bob, "The password is swordfish");
  await send(bob, "Don't tell anyone");
  await send(alice, "My own note about swordfish tanks");
  await roomView(alice).locator("[data-testid=message-body]", { hasText: "Don't tell anyone" }).waitFor({ timeout: 30000 });
  // the server holds only ciphertext: its search finds nothing here
  const server = await api(env, aliceToken, "POST", "/_matrix/client/v3/search", { search_categories: { room_events: { search_term: "swordfish", filter: { rooms: [secret] } } } });
  assert.equal(server.search_categories.room_events.results.length, 0);
  await alice.reload();
  await alice.getByTestId("room-list").waitFor({ timeout: 60000 });
  await openRoom(alice, secret);
  await alice.getByTestId("open-search").click();
  await alice.getByTestId("search-input").fill("swordf");
  await alice.getByTestId("search-input").press("Enter");
  // after a reload the messages are decrypted (and indexed) again as sync catches up: slow under load
  await expectResults(alice, 2, 60000);
  const coverage = alice.getByTestId("search-coverage");
  await coverage.getByText(/searched on this device/).waitFor();
  assert.match(await coverage.textContent(), /whole history this device can read/);
  await shot(alice, "05-search-encrypted-desktop-light");
  await alice.getByTestId("search-result").filter({ hasText: "The password is swordfish" }).click();
  await roomView(alice).locator(".msg.flash", { hasText: "The password is swordfish" }).waitFor({ timeout: 30000 });
  // all rooms: the plaza (server) and the vault (device) together
  await alice.getByTestId("search-input").fill("swordfish");
  await alice.getByRole("tab", { name: "All rooms" }).click();
  await alice.waitForFunction(() => document.querySelectorAll("[data-testid=search-result]").length === 2, null, { timeout: 30000 });
  await alice.getByTestId("search-input").fill("brown");
  await alice.getByTestId("search-input").press("Enter");
  await alice.waitForFunction(() => document.querySelectorAll("[data-testid=search-result]").length === 2, null, { timeout: 30000 });
  await alice.getByTestId("search-result").first().getByText("Open plaza", { exact: false }).waitFor();
  await alice.getByTestId("panel-close").click();
  // on a phone the panel covers the room; a result closes it and shows the message
  await bob.setViewportSize({ width: 390, height: 844 });
  await bob.getByTestId("open-search").click();
  await bob.getByTestId("search-input").fill("anyone");
  await bob.getByTestId("search-input").press("Enter");
  await bob.getByTestId("search-result").first().waitFor({ timeout: 30000 });
  await shot(bob, "06-search-phone-dark");
  await bob.getByTestId("search-result").first().click();
  await bob.getByTestId("search-panel").waitFor({ state: "detached" });
  await roomView(bob).locator(".msg.flash", { hasText: "Don't tell anyone" }).waitFor({ timeout: 30000 });
  await bob.setViewportSize({ width: 1280, height: 800 });
});

test("Ctrl+K: the room switcher", async () => {
  await alice.keyboard.press("Control+k");
  const input = alice.getByTestId("switcher-input");
  await input.waitFor();
  await input.fill("plaz");
  const first = alice.getByTestId("switcher-item").first();
  assert.equal(await first.getAttribute("data-room-id"), plaza);
  await shot(alice, "07-switcher-desktop-light");
  await input.press("Enter");
  await alice.locator(`[data-testid=room-view][data-room-id="${plaza}"]`).waitFor();
  // arrows: the second room of the list
  await alice.keyboard.press("Control+k");
  await input.fill("");
  const second = await alice.getByTestId("switcher-item").nth(1).getAttribute("data-room-id");
  await input.press("ArrowDown");
  await input.press("Enter");
  await alice.locator(`[data-testid=room-view][data-room-id="${second}"]`).waitFor();
  // nothing matches: the directory, with the words typed
  await alice.keyboard.press("Control+k");
  await input.fill(`Lobby 12 ${run}`);
  await alice.getByTestId("switcher-explore").waitFor();
  assert.equal(await alice.getByTestId("switcher-item").count(), 0);
  await input.press("Enter");
  await alice.locator("[data-testid=explore-room]", { hasText: `Lobby 12 ${run}` }).waitFor({ timeout: 30000 });
  assert.equal(await alice.getByTestId("explore-search").inputValue(), `Lobby 12 ${run}`);
  await alice.keyboard.press("Escape");
  // on a phone, dark
  await bob.setViewportSize({ width: 390, height: 844 });
  await bob.keyboard.press("Control+k");
  await bob.getByTestId("switcher-input").fill("v");
  await shot(bob, "08-switcher-phone-dark");
  await bob.keyboard.press("Escape");
  await bob.getByTestId("room-switcher").waitFor({ state: "detached" });
  await bob.setViewportSize({ width: 1280, height: 800 });
});

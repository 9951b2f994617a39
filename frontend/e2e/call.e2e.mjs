// End-to-end: a group call from the PWA. Three people (Chromium's fake camera and microphone) join
// the room's call on WSPR's bundled SFU and each sees the others' video; mute, camera off and leave
// show up on the other side.   E2E_KEEP=1 keeps the work dir   CHROMIUM=/usr/bin/chromium
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, appendFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { frontendDir, makeWorkDir, removeWorkDir, startStatic, startWspr, distDir } from "./servers.mjs";

const ART = join(frontendDir, "test-artifacts");
const PASSWORD = "correct horse battery staple";
const run = Date.now().toString(36).slice(-5);
const user = (n) => `${n}c${run}`;
const mxid = (n) => `@${user(n)}:localhost`;

let workDir, hs, web, browser, appUrl, roomId;
const pages = {};

mkdirSync(ART, { recursive: true });
const consoleLog = join(ART, "console-call.log");
writeFileSync(consoleLog, "");

async function shot(page, name) {
  await page.screenshot({ path: join(ART, `call-${name}.png`) });
}

async function newPerson(name, opts) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 }, ...opts });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("console", (m) => {
    if (process.env.E2E_VERBOSE || m.type() === "error" || m.type() === "warning" || m.text().startsWith("[wspr]")) appendFileSync(consoleLog, `[${name}] ${m.type()}: ${m.text()}\n`);
  });
  page.on("pageerror", (e) => appendFileSync(consoleLog, `[${name}] pageerror: ${e.message}\n`));
  page.on("dialog", (d) => d.accept(d.type() === "prompt" ? PASSWORD : undefined));
  pages[name] = page;
  return page;
}

async function register(page, username) {
  await page.goto(appUrl);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.locator('input[name="homeserver"]').fill(hs.baseUrl);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(PASSWORD);
  await page.locator('input[name="confirm"]').fill(PASSWORD);
  await page.getByRole("button", { name: "Create account", exact: true }).click();
  await page.getByTestId("room-list").waitFor({ timeout: 60000 });
}

async function api(page, method, path, body) {
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem("wspr.session")).accessToken);
  const r = await fetch(`${hs.baseUrl}${path}`, { method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
  const data = await r.json();
  assert.equal(r.status, 200, `${method} ${path}: ${JSON.stringify(data)}`);
  return data;
}

async function openRoom(page) {
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click({ timeout: 30000 });
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
}

async function send(page, text) {
  const input = page.getByTestId("composer-input");
  await input.fill(text);
  await input.press("Enter");
}

const tiles = (page) => page.locator("[data-testid=call-tile]");
const remoteTile = (page, name) => page.locator(`[data-testid=call-tile][data-local=false][data-user-id="${mxid(name)}"]`);

/** Every remote tile shows a video that has decoded frames and keeps playing. */
async function seesOthersVideo(page, others) {
  await page.waitForFunction(
    (ids) => {
      const vids = ids.map((id) => document.querySelector(`[data-testid=call-tile][data-local=false][data-user-id="${id}"] video`));
      return vids.every((v) => v && v.videoWidth > 0 && v.readyState >= 2 && !v.paused);
    },
    others.map(mxid),
    { timeout: 45000, polling: 250 },
  );
  const times = () =>
    page.evaluate((ids) => ids.map((id) => document.querySelector(`[data-testid=call-tile][data-local=false][data-user-id="${id}"] video`).currentTime), others.map(mxid));
  const t0 = await times();
  await page.waitForTimeout(1200);
  const t1 = await times();
  t1.forEach((t, i) => assert.ok(t > t0[i], `${others[i]}'s video is playing (${t0[i]} → ${t})`));
  return page.evaluate((ids) => ids.map((id) => document.querySelector(`[data-testid=call-tile][data-local=false][data-user-id="${id}"] video`).videoWidth), others.map(mxid));
}

/** 2 s of a 330 Hz tone at about -12 dBFS, 48 kHz mono 16-bit PCM (Chromium loops it). */
function toneWav() {
  const rate = 48000, n = rate * 2;
  const b = Buffer.alloc(44 + n * 2);
  b.write("RIFF", 0); b.writeUInt32LE(36 + n * 2, 4); b.write("WAVE", 8);
  b.write("fmt ", 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write("data", 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 330 * i) / rate)), 44 + i * 2);
  return b;
}

before(async () => {
  workDir = makeWorkDir();
  hs = await startWspr(workDir);
  assert.ok(hs.sfuUrl, "WSPR started with its SFU");
  appUrl = hs.appUrl;
  if (!appUrl) {
    web = await startStatic(distDir);
    appUrl = web.url;
  }
  // a steady tone instead of Chromium's once-a-second beep, so the SFU hears someone speaking
  const wav = join(workDir, "tone.wav");
  writeFileSync(wav, toneWav());
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      "--autoplay-policy=no-user-gesture-required", `--use-file-for-fake-audio-capture=${wav}`,
    ],
  });
  console.log(`# WSPR at ${hs.baseUrl} (SFU ${hs.sfuUrl}), app at ${appUrl}`);
});

after(async () => {
  await browser?.close().catch(() => {});
  await web?.stop().catch(() => {});
  await hs?.stop().catch(() => {});
  if (hs?.logFile) {
    try {
      copyFileSync(hs.logFile, join(ART, "call-server.log"));
    } catch {}
  }
  if (process.env.E2E_KEEP) console.log(`# kept ${workDir}`);
  else if (workDir) removeWorkDir(workDir);
});

test("three people share a room", async () => {
  const alice = await newPerson("alice", { colorScheme: "light" });
  const bob = await newPerson("bob", { colorScheme: "dark" });
  const carol = await newPerson("carol", { colorScheme: "dark", viewport: { width: 390, height: 800 }, isMobile: true, hasTouch: true });
  await Promise.all([register(alice, user("alice")), register(bob, user("bob")), register(carol, user("carol"))]);
  ({ room_id: roomId } = await api(alice, "POST", "/_matrix/client/v3/createRoom", {
    name: "Standup",
    preset: "public_chat",
    // as the PWA's own new rooms (and Element Web's) do: members may announce that they're in the call
    power_level_content_override: { events: { "org.matrix.msc3401.call.member": 0 } },
  }));
  await api(bob, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
  await api(carol, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
  // more history than a screen holds, so the timeline scrolls (the call bar must not cover its top)
  for (let i = 1; i <= 40; i++) {
    await api(alice, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/early${i}`, { msgtype: "m.text", body: `Earlier note ${i}` });
  }
  await Promise.all([openRoom(alice), openRoom(bob), openRoom(carol)]);
});

test("alice starts the call; the others see it in progress and join", async () => {
  const { alice, bob, carol } = pages;
  const button = alice.getByTestId("call-button");
  assert.equal(await button.getAttribute("aria-label"), "Start call");
  await button.click();
  await alice.locator("[data-testid=call-view][data-phase=connected]").waitFor({ timeout: 30000 });
  await alice.locator("[data-testid=call-tile][data-local=true][data-camera=on]").waitFor({ timeout: 20000 });

  // alice's membership (org.matrix.msc3401.call.member) reaches the others: "Join call (1)"
  await bob.locator("[data-testid=call-button][data-call-count='1'] [data-testid=call-in-progress]").waitFor({ timeout: 20000 });
  await carol.locator("[data-testid=call-button][data-call-count='1']").waitFor({ timeout: 20000 });
  await shot(bob, "01-call-in-progress-desktop");
  await shot(carol, "02-call-in-progress-phone");

  await bob.getByTestId("call-button").click();
  await carol.getByTestId("call-button").click();
  for (const p of [bob, carol]) await p.locator("[data-testid=call-view][data-phase=connected]").waitFor({ timeout: 30000 });
});

test("each participant shows the others' video", async () => {
  const { alice, bob, carol } = pages;
  const [wa, wb, wc] = await Promise.all([seesOthersVideo(alice, ["bob", "carol"]), seesOthersVideo(bob, ["alice", "carol"]), seesOthersVideo(carol, ["alice", "bob"])]);
  console.log(`# remote video widths: alice sees ${wa}, bob ${wb}, carol ${wc}`);
  for (const p of [alice, bob, carol]) assert.equal(await tiles(p).count(), 3);
  // every remote microphone is attached to an <audio> element
  await alice.waitForFunction(() => document.querySelectorAll("[data-testid=call-audio]").length === 2);
  // the membership state every client (and Element Call) reads
  const state = await api(alice, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`);
  const members = state.filter((e) => e.type === "org.matrix.msc3401.call.member" && e.content.application === "m.call");
  assert.equal(members.length, 3, JSON.stringify(members));
  for (const m of members) {
    assert.equal(m.state_key, `_${m.sender}_${m.content.device_id}_m.call`);
    assert.equal(m.content.focus_active.type, "livekit");
    assert.match(m.content.foci_preferred[0].livekit_service_url, /\/_wspr\/livekit\/jwt$/);
  }
  await alice.waitForTimeout(800); // let the grid settle before the pictures
  await shot(alice, "03-three-way-desktop-light");
  await shot(bob, "04-three-way-desktop-dark");
  await shot(carol, "05-three-way-phone");
});

test("who is speaking is shown", async () => {
  // everyone's fake microphone plays a tone; the SFU's active-speaker updates light up their tiles
  const { alice } = pages;
  await remoteTile(alice, "bob").and(alice.locator("[data-speaking=true]")).waitFor({ timeout: 20000 });
  await shot(alice, "06-speaking");
});

test("mute and camera off show on the other side", async () => {
  const { alice, bob, carol } = pages;
  await alice.getByTestId("call-mic").click();
  await remoteTile(bob, "alice").and(bob.locator("[data-mic=muted]")).waitFor({ timeout: 15000 });
  await remoteTile(carol, "alice").and(carol.locator("[data-mic=muted]")).waitFor({ timeout: 15000 });
  // and a muted microphone is not speaking
  await remoteTile(bob, "alice").and(bob.locator("[data-speaking=false]")).waitFor({ timeout: 15000 });
  await bob.getByTestId("call-camera").click();
  await remoteTile(alice, "bob").and(alice.locator("[data-camera=off]")).waitFor({ timeout: 15000 });
  assert.equal(await remoteTile(alice, "bob").locator("video").count(), 0, "an avatar instead of video");
  await alice.locator("[data-testid=call-tile][data-local=true][data-mic=muted]").waitFor();
  await shot(alice, "07-muted-and-camera-off");
  await shot(bob, "08-own-camera-off");
  // and back on
  await alice.getByTestId("call-mic").click();
  await remoteTile(bob, "alice").and(bob.locator("[data-mic=on]")).waitFor({ timeout: 15000 });
  await bob.getByTestId("call-camera").click();
  await remoteTile(alice, "bob").and(alice.locator("[data-camera=on]")).waitFor({ timeout: 15000 });
  await seesOthersVideo(alice, ["bob"]);
});

test("back to chat during the call, and return", async () => {
  const { bob, carol } = pages;
  for (const p of [bob, carol]) {
    await p.getByTestId("call-minimize").click();
    await p.locator("[data-testid=call-view][data-minimized=true]").waitFor();
    await p.getByTestId("composer-input").waitFor();
  }
  await send(bob, "Sharing the agenda while we talk");
  await carol.locator("[data-testid=message-body]", { hasText: "Sharing the agenda" }).waitFor({ timeout: 20000 });
  assert.equal(await bob.locator("[data-testid=call-audio]").count(), 2, "the others are still heard");
  // the bar sits over the top of the timeline: scrolled to the top, the oldest message and the
  // "Load earlier messages" control (or the start of the room) are below it, not under it
  for (const p of [bob, carol]) {
    const timeline = p.getByTestId("timeline");
    const start = p.getByTestId("timeline-start");
    for (let i = 0; i < 60 && !(await start.count()); i++) {
      await timeline.evaluate((el) => (el.scrollTop = 0));
      await p.waitForTimeout(250);
    }
    await timeline.evaluate((el) => (el.scrollTop = 0));
    await p.waitForTimeout(300);
    const bar = await p.getByTestId("call-view").boundingBox();
    const top = await start.boundingBox();
    assert.ok(top.y >= bar.y + bar.height, `the call bar (${bar.y}..${bar.y + bar.height}) covers the top of the timeline (${top.y})`);
    await timeline.evaluate((el) => (el.scrollTop = el.scrollHeight));
  }
  await shot(bob, "09-minimized-desktop");
  await shot(carol, "10-minimized-phone");
  // on the phone, back to the room list: the call goes on in its bar
  await carol.getByRole("button", { name: "Back to rooms" }).click();
  await carol.getByTestId("room-list").waitFor();
  await carol.locator("[data-testid=call-view][data-minimized=true]").waitFor();
  await shot(carol, "10b-room-list-during-call-phone");
  // the header's call button (or the bar) brings the call back
  await bob.getByTestId("call-button").click();
  await carol.getByTestId("call-minimize").click();
  for (const p of [bob, carol]) await p.locator("[data-testid=call-view][data-minimized=false]").waitFor();
  await seesOthersVideo(bob, ["alice", "carol"]);
});

test("carol leaves: her tile goes and her membership is cleared", async () => {
  const { alice, bob, carol } = pages;
  await carol.getByTestId("call-leave").click();
  await carol.getByTestId("call-view").waitFor({ state: "detached" });
  for (const p of [alice, bob]) {
    await remoteTile(p, "carol").waitFor({ state: "detached", timeout: 20000 });
    assert.equal(await tiles(p).count(), 2);
  }
  // carol's room header (she had gone back to the room list): the call goes on with 2
  await openRoom(carol);
  await carol.locator("[data-testid=call-button][data-call-count='2']").waitFor({ timeout: 20000 });
  await shot(alice, "11-after-carol-left");
  await shot(carol, "12-carol-back-in-chat-phone");

  await Promise.all([alice.getByTestId("call-leave").click(), bob.getByTestId("call-leave").click()]);
  await carol.locator("[data-testid=call-button][data-call-count='0']").waitFor({ timeout: 20000 });
  const state = await api(alice, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`);
  const live = state.filter((e) => e.type === "org.matrix.msc3401.call.member" && Object.keys(e.content).length > 0);
  assert.equal(live.length, 0, `memberships left behind: ${JSON.stringify(live)}`);
});

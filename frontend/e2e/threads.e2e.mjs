// Threads and media on a real homeserver (WSPR, or Synapse with E2E_HOMESERVER=synapse), in an encrypted
// room and an unencrypted one: replying in a thread (m.thread with the reply fallback, as the server
// stores it), thread replies kept out of the main timeline, the summary under the root, the thread
// list, unread state per thread (the server's counts in the unencrypted room; this device's in the
// encrypted one) and threaded read receipts; images in the viewer (zoom, keys, download, next), inline
// video (first frame as poster) and audio, files with name, type and size; link previews when the
// server has one, nothing when it has none, none in encrypted rooms unless turned on.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerInApp, startEnvironment } from "./browser.mjs";

const run = Date.now().toString(36).slice(-5);
const enc = encodeURIComponent;
let env, alice, bob, aliceToken, bobToken, aliceId, bobId, secret, open;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-threads-${name}.png`) });
const roomView = (page) => page.getByTestId("room-view");
const mainBody = (page, text) => roomView(page).locator("[data-testid=message-body]", { hasText: text });
const threadPanel = (page) => page.getByTestId("thread-panel");

async function openRoom(page, roomId) {
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click({ timeout: 30000 });
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
}

async function send(page, text, scope = roomView(page)) {
  const input = scope.getByTestId("composer-input");
  await input.fill(text);
  await input.press("Enter");
}

async function waitFor(what, fn, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The event as the server stores it (relations stay in cleartext in encrypted events). */
async function serverEvents(roomId) {
  return (await api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).chunk;
}

before(async () => {
  env = await startEnvironment({ name: "threads" });
  alice = await newPage(env, "alice", { colorScheme: "light" });
  bob = await newPage(env, "bob", { colorScheme: "dark" });
  await Promise.all([registerInApp(env, alice, `alice${run}`), registerInApp(env, bob, `bob${run}`)]);
  [aliceToken, bobToken] = await Promise.all([accessToken(alice), accessToken(bob)]);
  aliceId = (await api(env, aliceToken, "GET", "/_matrix/client/v3/account/whoami")).user_id;
  bobId = (await api(env, bobToken, "GET", "/_matrix/client/v3/account/whoami")).user_id;
  // an encrypted room made in the app (so the app knows it's encrypted), bob invited and joined
  await alice.getByTestId("new-chat").click();
  await alice.getByRole("button", { name: "New room" }).click();
  await alice.getByTestId("room-name").fill("Secret plans");
  await alice.getByTestId("new-chat-submit").click();
  await alice.getByTestId("room-title").getByText("Secret plans").waitFor();
  secret = await roomView(alice).getAttribute("data-room-id");
  await api(env, aliceToken, "POST", `/_matrix/client/v3/rooms/${enc(secret)}/invite`, { user_id: bobId });
  await api(env, bobToken, "POST", `/_matrix/client/v3/join/${enc(secret)}`, {});
  // and an unencrypted one
  ({ room_id: open } = await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Open plaza", preset: "public_chat" }));
  await api(env, bobToken, "POST", `/_matrix/client/v3/join/${enc(open)}`, {});
});

after(async () => {
  await env?.stop();
});

let rootId, replyId;

test("a reply in a thread: m.thread with the fallback, out of the main timeline, summary under the root", async () => {
  await openRoom(alice, secret);
  await openRoom(bob, secret);
  await send(alice, "Where shall we meet?");
  const root = roomView(bob).locator("[data-testid=message]", { has: bob.locator("[data-testid=message-body]", { hasText: "Where shall we meet?" }) });
  await root.waitFor({ timeout: 30000 });
  rootId = await root.getAttribute("data-event-id");
  await root.hover();
  await root.getByTestId("reply-in-thread").click();
  await threadPanel(bob).waitFor();
  await threadPanel(bob).locator("[data-testid=message-body]", { hasText: "Where shall we meet?" }).waitFor();
  await send(bob, "At the old mill, at noon", threadPanel(bob));
  await threadPanel(bob).locator("[data-testid=message-body]", { hasText: "At the old mill" }).waitFor();
  // on the server: an encrypted event whose cleartext relation is the thread, with the reply fallback
  let stored;
  await waitFor("the reply on the server", async () => {
    stored = (await serverEvents(secret)).find((e) => e.content["m.relates_to"]?.rel_type === "m.thread");
    return !!stored;
  });
  assert.equal(stored.type, "m.room.encrypted");
  assert.deepEqual(stored.content["m.relates_to"], { rel_type: "m.thread", event_id: rootId, is_falling_back: true, "m.in_reply_to": { event_id: rootId } });
  replyId = stored.event_id;
  // alice: the summary under the root, not the reply itself
  const summary = roomView(alice).getByTestId("thread-summary");
  await summary.waitFor({ timeout: 30000 });
  assert.match(await summary.textContent(), /1 reply/);
  assert.equal(await mainBody(alice, "At the old mill").count(), 0, "thread replies stay out of the main timeline");
  await alice.getByTestId("threads-unread").waitFor({ timeout: 30000 });
  await roomView(alice).getByTestId("thread-summary-unread").waitFor();
  await shot(alice, "01-summary-desktop-light");
  await shot(bob, "02-thread-panel-desktop-dark");
});

test("the thread list, reading a thread (threaded receipt), a real reply inside it", async () => {
  await alice.getByTestId("open-threads").click();
  const item = alice.locator(`[data-testid=thread-item][data-root-id="${rootId}"]`);
  await item.waitFor({ timeout: 30000 });
  await item.getByText("1 reply").waitFor();
  await item.getByTestId("thread-unread").waitFor();
  await shot(alice, "03-thread-list-desktop-light");
  await item.click();
  await threadPanel(alice).locator("[data-testid=message-body]", { hasText: "At the old mill" }).waitFor();
  // read now: the dots go, and the receipt the server got is threaded
  await alice.getByTestId("threads-unread").waitFor({ state: "detached", timeout: 30000 });
  await waitFor("a threaded receipt from alice", async () => {
    const sync = await api(env, bobToken, "GET", `/_matrix/client/v3/sync?timeout=0&filter=${enc(JSON.stringify({ room: { rooms: [secret], timeline: { limit: 1 }, state: { lazy_load_members: true } } }))}`);
    const receipts = sync.rooms?.join?.[secret]?.ephemeral?.events?.filter((e) => e.type === "m.receipt") ?? [];
    return receipts.some((r) => r.content[replyId]?.["m.read"]?.[aliceId]?.thread_id === rootId);
  });
  // a reply to a message in the thread: is_falling_back false, the message it answers
  const inThread = threadPanel(alice).locator("[data-testid=message]", { has: alice.locator("[data-testid=message-body]", { hasText: "At the old mill" }) });
  await inThread.hover();
  await inThread.getByRole("button", { name: "Reply", exact: true }).click();
  await send(alice, "Noon works for me", threadPanel(alice));
  let stored;
  await waitFor("the real reply on the server", async () => {
    stored = (await serverEvents(secret)).find((e) => e.content["m.relates_to"]?.rel_type === "m.thread" && e.content["m.relates_to"].is_falling_back === false);
    return !!stored;
  });
  assert.deepEqual(stored.content["m.relates_to"], { rel_type: "m.thread", event_id: rootId, is_falling_back: false, "m.in_reply_to": { event_id: replyId } });
  // bob sees it live in his open thread, quoting what it answers
  const live = threadPanel(bob).locator("[data-testid=message]", { has: bob.locator("[data-testid=message-body]", { hasText: "Noon works for me" }) });
  await live.waitFor({ timeout: 30000 });
  await live.locator(".reply-quote", { hasText: "At the old mill" }).waitFor();
  assert.equal(await threadPanel(bob).locator(".reply-quote").count(), 1, "fallback replies show no quote in the thread");
  await roomView(bob).getByTestId("thread-summary").getByText("2 replies").waitFor({ timeout: 30000 });
  await bob.setViewportSize({ width: 390, height: 844 });
  await shot(bob, "04-thread-phone-dark");
  await bob.getByTestId("panel-close").click();
  await bob.setViewportSize({ width: 1280, height: 800 });
  await alice.getByTestId("panel-close").click();
});

test("unencrypted room: the server's per-thread counts make a thread unread", async () => {
  await openRoom(alice, open);
  const { event_id: root } = await api(env, aliceToken, "PUT", `/_matrix/client/v3/rooms/${enc(open)}/send/m.room.message/r${run}`, { msgtype: "m.text", body: "Plaza opening hours?" });
  await mainBody(alice, "Plaza opening hours?").waitFor({ timeout: 30000 });
  // alice has read the room; bob answers in the thread: only the thread is unread
  await api(env, bobToken, "PUT", `/_matrix/client/v3/rooms/${enc(open)}/send/m.room.message/t${run}`, {
    msgtype: "m.text",
    body: "Nine to five",
    "m.relates_to": { rel_type: "m.thread", event_id: root, is_falling_back: true, "m.in_reply_to": { event_id: root } },
  });
  await roomView(alice).getByTestId("thread-summary-unread").waitFor({ timeout: 30000 });
  await alice.getByTestId("threads-unread").waitFor();
  assert.equal(await mainBody(alice, "Nine to five").count(), 0);
  await roomView(alice).getByTestId("thread-summary").click();
  await threadPanel(alice).locator("[data-testid=message-body]", { hasText: "Nine to five" }).waitFor();
  await alice.getByTestId("threads-unread").waitFor({ state: "detached", timeout: 30000 });
  await alice.getByTestId("panel-close").click();
});

/** A short WebM made in the browser (a canvas recorded with MediaRecorder). */
function recordVideo(page) {
  return page.evaluate(async () => {
    const c = document.createElement("canvas");
    c.width = 320;
    c.height = 240;
    const ctx = c.getContext("2d");
    const rec = new MediaRecorder(c.captureStream(25), { mimeType: "video/webm;codecs=vp8" });
    const chunks = [];
    rec.ondataavailable = (e) => chunks.push(e.data);
    let f = 0;
    const paint = () => {
      ctx.fillStyle = `hsl(${(f * 12) % 360} 70% 50%)`;
      ctx.fillRect(0, 0, 320, 240);
      ctx.fillStyle = "#fff";
      ctx.font = "48px sans-serif";
      ctx.fillText(String(f++), 130, 140);
    };
    paint();
    rec.start(100);
    const t = setInterval(paint, 40);
    await new Promise((r) => setTimeout(r, 1500));
    clearInterval(t);
    const stopped = new Promise((r) => (rec.onstop = r));
    rec.stop();
    await stopped;
    const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  });
}

/** One second of a 440 Hz tone as 8 kHz 16-bit mono WAV. */
function wav() {
  const rate = 8000;
  const n = rate;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write("RIFF", 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write("WAVEfmt ", 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write("data", 36);
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return buf;
}

async function attach(page, file) {
  await roomView(page).getByTestId("file-input").setInputFiles(file);
  await roomView(page).getByTestId("send").click();
  await roomView(page).getByTestId("attachment-tray").waitFor({ state: "detached", timeout: 60000 });
}

test("media: image viewer, inline video and audio, files with name, type and size (encrypted)", async () => {
  await openRoom(alice, secret);
  await openRoom(bob, secret);
  const png1 = await alice.screenshot({ clip: { x: 0, y: 0, width: 640, height: 400 } });
  const png2 = await bob.screenshot({ clip: { x: 300, y: 100, width: 400, height: 400 } });
  await attach(alice, { name: "first.png", mimeType: "image/png", buffer: png1 });
  await attach(alice, { name: "second.png", mimeType: "image/png", buffer: png2 });
  const video = Buffer.from(await recordVideo(alice), "base64");
  await attach(alice, { name: "clip.webm", mimeType: "video/webm", buffer: video });
  await attach(alice, { name: "tone.wav", mimeType: "audio/wav", buffer: wav() });
  await attach(alice, { name: "report.pdf", mimeType: "application/pdf", buffer: Buffer.alloc(2048, 7) });

  // bob's side: the video with its poster (decrypted from thumbnail_file), the audio and the file
  const poster = roomView(bob).locator("[data-testid=video] .video-poster img");
  await poster.waitFor({ timeout: 60000 });
  await bob.waitForFunction((el) => el.complete && el.naturalWidth > 0, await poster.elementHandle());
  const file = roomView(bob).locator("[data-testid=file]", { hasText: "report.pdf" });
  await file.waitFor({ timeout: 30000 });
  assert.equal(await file.getByTestId("file-info").textContent(), "PDF · 2.0 KB · encrypted");
  const audio = roomView(bob).locator("[data-testid=audio]", { hasText: "tone.wav" });
  await audio.waitFor();
  assert.match(await audio.textContent(), /0:01 · 16 KB · encrypted/);
  await shot(bob, "05-media-desktop-dark");

  // the image viewer: zoom by button and keys, download, next, Escape
  const first = roomView(bob).locator("[data-testid=image]").first();
  await first.locator("img").waitFor({ timeout: 30000 });
  await first.click();
  const box = bob.getByTestId("lightbox");
  await box.waitFor();
  await bob.getByTestId("lightbox-image").waitFor();
  assert.equal(await bob.getByTestId("lightbox-zoom").textContent(), "100%");
  await bob.getByTestId("lightbox-zoom-in").click();
  assert.equal(await bob.getByTestId("lightbox-zoom").textContent(), "125%");
  await bob.keyboard.press("+");
  assert.equal(await bob.getByTestId("lightbox-zoom").textContent(), "156%");
  const transform = await bob.getByTestId("lightbox-image").evaluate((el) => el.style.transform);
  assert.match(transform, /scale\(1\.56/);
  await shot(bob, "06-lightbox-zoomed-dark");
  await bob.keyboard.press("0");
  assert.equal(await bob.getByTestId("lightbox-zoom").textContent(), "100%");
  const [download] = await Promise.all([bob.waitForEvent("download"), bob.getByTestId("lightbox-download").click()]);
  assert.equal(download.suggestedFilename(), "first.png");
  await box.getByText("first.png").waitFor();
  await bob.keyboard.press("ArrowRight");
  await box.getByText("second.png").waitFor();
  await box.getByText("2 of 3").waitFor();
  await bob.keyboard.press("ArrowRight");
  await box.locator("video").waitFor(); // the video is in the viewer's sequence too
  await bob.keyboard.press("Escape");
  await box.waitFor({ state: "detached" });

  // inline video: plays decrypted, in place
  await roomView(bob).getByTestId("video-play").click();
  const player = roomView(bob).locator("[data-testid=video] video");
  await player.waitFor({ timeout: 30000 });
  await bob.waitForFunction((el) => el.readyState >= 1 && el.videoWidth === 320, await player.elementHandle(), { timeout: 30000 });
  // inline audio
  await audio.getByTestId("audio-play").click();
  const audioEl = audio.locator("audio");
  await audioEl.waitFor({ timeout: 30000 });
  await bob.waitForFunction((el) => el.readyState >= 1 && Math.abs(el.duration - 1) < 0.1, await audioEl.elementHandle(), { timeout: 30000 });
  // the file: one click fetches, decrypts and saves it
  const [saved] = await Promise.all([bob.waitForEvent("download"), file.getByRole("button", { name: "Download" }).click()]);
  assert.equal(saved.suggestedFilename(), "report.pdf");
  await shot(bob, "07-media-playing-dark");
  await bob.setViewportSize({ width: 390, height: 844 });
  await shot(bob, "08-media-phone-dark");
  await first.click();
  await bob.getByTestId("lightbox-image").waitFor();
  await bob.waitForTimeout(300); // the viewer fades in
  await shot(bob, "09-lightbox-phone-dark");
  await bob.keyboard.press("Escape");
  await bob.setViewportSize({ width: 1280, height: 800 });
  await shot(alice, "10-media-desktop-light");
});

test("link previews: shown when the server has one, nothing when it has none; off in encrypted rooms", async () => {
  const previews = [];
  // the server's answers, whatever it would fetch: a page it could preview, and one it can't
  await alice.route(/\/_matrix\/client\/v1\/media\/preview_url\?/, async (route) => {
    const url = new URL(route.request().url()).searchParams.get("url");
    previews.push(url);
    if (url.startsWith("https://example.org/article"))
      return route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ "og:title": "An article worth reading", "og:description": "What the page says about itself.", "og:site_name": "Example" }) });
    return route.fulfill({ status: 404, contentType: "application/json", body: JSON.stringify({ errcode: "M_NOT_FOUND", error: "No preview" }) });
  });
  // encrypted room: nothing asked of the server
  await openRoom(alice, secret);
  await send(alice, "Secret link https://example.org/article-secret");
  await mainBody(alice, "Secret link").locator("a", { hasText: "https://example.org/article-secret" }).waitFor();
  await alice.waitForTimeout(1500);
  assert.equal(await roomView(alice).getByTestId("link-preview").count(), 0);
  assert.ok(!previews.some((u) => u.includes("article-secret")), "the link never went to the server");
  // unencrypted room: a preview, and nothing for a link without one
  await openRoom(alice, open);
  await send(alice, "Read https://example.org/article (and https://example.org/nothing).");
  const card = roomView(alice).getByTestId("link-preview");
  await card.waitFor({ timeout: 30000 });
  await card.getByText("An article worth reading").waitFor();
  assert.equal(await card.getAttribute("href"), "https://example.org/article");
  assert.equal(await card.count(), 1, "no card for the link the server had no preview of");
  assert.ok(previews.includes("https://example.org/nothing"));
  await shot(alice, "11-link-preview-light");
  await alice.unroute(/\/_matrix\/client\/v1\/media\/preview_url\?/);
  // turned on for encrypted rooms in Settings → Appearance
  await alice.getByTestId("open-settings").click();
  await alice.getByRole("tab", { name: "Appearance" }).click();
  await alice.getByTestId("pref-encrypted-link-previews").check();
  await alice.keyboard.press("Escape");
  // and the real server (a preview it can make, or none): never an error on screen
  await openRoom(alice, secret);
  await send(alice, "Real server https://example.invalid/page");
  await mainBody(alice, "Real server").waitFor();
  await alice.waitForTimeout(1500);
  assert.equal(await roomView(alice).locator(".alert-error").count(), 0);
});

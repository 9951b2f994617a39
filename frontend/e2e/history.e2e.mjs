// Reading history: a 320-message room opened on a new device, scrolled up with the mouse wheel (and on a
// phone) against a slow server. Older messages must load as the top comes near, without a button, all
// the way to the start, and what the reader is looking at must not move when a page arrives.
//   E2E_HOMESERVER=synapse|wspr (default wspr)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, api, newPage, registerApi, signInInApp, startEnvironment } from "./browser.mjs";

const COUNT = 320;
/** every /messages request waits this long: a slow homeserver, or a slow network */
const DELAY_MS = 1200;
const run = Date.now().toString(36).slice(-5);
const USER = `reader${run}`;
let env, roomId;

before(async () => {
  env = await startEnvironment({ name: "history" });
  const { token } = await registerApi(env, USER);
  ({ room_id: roomId } = await api(env, token, "POST", "/_matrix/client/v3/createRoom", { name: "Long history", preset: "private_chat" }));
  // numbered messages, some of them long (so rows differ in height), sent a few at a time
  const body = (i) => (i % 7 === 0 ? `Message ${i}: ${"a longer line of text that wraps on narrow screens, ".repeat(1 + (i % 3))}` : `Message ${i}`);
  for (let i = 1; i <= COUNT; i += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, COUNT - i + 1) }, (_, k) => i + k).map((n) =>
        api(env, token, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${n}`, { msgtype: "m.text", body: body(n) }),
      ),
    );
  }
});

after(async () => {
  await env?.stop();
});

/** Delays every back-pagination request; counts them. */
async function slowMessages(page) {
  const stats = { started: 0, finished: 0 };
  await page.route(/\/_matrix\/client\/v3\/rooms\/[^/]+\/messages\?/, async (route) => {
    stats.started++;
    await new Promise((r) => setTimeout(r, DELAY_MS));
    try {
      await route.continue();
    } finally {
      stats.finished++;
    }
  });
  return stats;
}

async function openLongRoom(page) {
  await signInInApp(env, page, USER);
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click();
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
  await page.locator("[data-testid=message-body]", { hasText: `Message ${COUNT}` }).waitFor();
}

/** The first message at least partly visible in the timeline, and its top relative to the timeline's top. */
function firstVisible(page) {
  return page.evaluate(() => {
    const tl = document.querySelector("[data-testid=timeline]");
    const top = tl.getBoundingClientRect().top;
    for (const m of tl.querySelectorAll("[data-event-id]")) {
      const r = m.getBoundingClientRect();
      if (r.bottom > top + 1) return { id: m.getAttribute("data-event-id"), top: r.top - top, scrollTop: tl.scrollTop };
    }
    return null;
  });
}

function topOf(page, id) {
  return page.evaluate((eventId) => {
    const tl = document.querySelector("[data-testid=timeline]");
    const m = tl.querySelector(`[data-event-id="${CSS.escape(eventId)}"]`);
    return m ? m.getBoundingClientRect().top - tl.getBoundingClientRect().top : null;
  }, id);
}

const messageCount = (page) => page.locator("[data-testid=message]").count();

/** Numbers of the "Message N" rows shown, in order. */
function shownNumbers(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("[data-testid=message-body]")].map((b) => Number(/Message (\d+)/.exec(b.textContent)?.[1] ?? NaN)).filter((n) => !Number.isNaN(n)),
  );
}

/**
 * Wheels up until a page is being fetched, stops, and checks that the message at the top of the view
 * stays exactly where it was when the page lands above it.
 */
async function pageArrivesWithoutMovingTheView(page, stats) {
  const before = stats.started;
  for (let i = 0; i < 60 && stats.started === before; i++) {
    await page.mouse.wheel(0, -300);
    await page.waitForTimeout(60);
  }
  assert.ok(stats.started > before, "scrolling up asked for older messages");
  await page.waitForTimeout(250); // the wheel's own scrolling settles
  const seen = await messageCount(page);
  const anchor = await firstVisible(page);
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=message]").length > n, seen, { timeout: 30000 });
  await page.waitForTimeout(300); // decryption, images, a second render
  const after = await topOf(page, anchor.id);
  assert.ok(after !== null, "the message being read is still there");
  assert.ok(Math.abs(after - anchor.top) <= 1, `the view jumped by ${after - anchor.top}px when older messages arrived`);
  const now = await firstVisible(page);
  assert.ok(now.scrollTop > anchor.scrollTop, "there is room to keep scrolling up");
}

/** Whether the "beginning of the conversation" line is on screen (not just in the DOM, above the view). */
function startInView(page) {
  return page.evaluate(() => {
    const start = document.querySelector("[data-testid=timeline-start]");
    if (!start) return false;
    const tl = document.querySelector("[data-testid=timeline]").getBoundingClientRect();
    const r = start.getBoundingClientRect();
    return r.top >= tl.top - 1 && r.bottom <= tl.bottom + 1;
  });
}

/** Scrolls up with `scrollUp(px)` until the start of the room is on screen; then every message is there, once. */
async function scrollToTheStart(page, stats, scrollUp) {
  const deadline = Date.now() + 120000;
  while (!(await startInView(page))) {
    assert.ok(Date.now() < deadline, `stalled: ${await messageCount(page)} of ${COUNT} messages after ${stats.started} pages`);
    await scrollUp();
    await page.waitForTimeout(80);
  }
  const numbers = await shownNumbers(page);
  assert.equal(numbers.length, COUNT, `all ${COUNT} messages are shown`);
  assert.deepEqual([...numbers].sort((a, b) => a - b), Array.from({ length: COUNT }, (_, i) => i + 1), "each message once");
}

test("desktop: the mouse wheel reads a 320-message room back to its start, the view never jumps", async () => {
  const page = await newPage(env, "desktop", { colorScheme: "light" });
  const stats = await slowMessages(page);
  await openLongRoom(page);
  const box = await page.getByTestId("timeline").boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let i = 0; i < 3; i++) await pageArrivesWithoutMovingTheView(page, stats);
  await page.screenshot({ path: join(ART, `${env.kind}-history-desktop.png`) });
  await scrollToTheStart(page, stats, () => page.mouse.wheel(0, -600));
  assert.equal(await page.getByTestId("load-more").count(), 0, "never needed the button");
  await page.screenshot({ path: join(ART, `${env.kind}-history-start-desktop.png`) });
  console.log(`# desktop: ${COUNT} messages in ${stats.started} back-pagination requests of ${DELAY_MS} ms each`);
  await page.context().close();
});

test("phone: touch-sized screen, same room, same guarantees", async () => {
  const page = await newPage(env, "phone", { colorScheme: "dark", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const stats = await slowMessages(page);
  await openLongRoom(page);
  // a phone scrolls by touch; the scroll position moves the same way, so drive it directly
  const scrollUp = async (px) => page.getByTestId("timeline").evaluate((el, d) => el.scrollBy(0, -d), px);
  const before = stats.started;
  for (let i = 0; i < 40 && stats.started === before; i++) {
    await scrollUp(250);
    await page.waitForTimeout(60);
  }
  assert.ok(stats.started > before, "scrolling up asked for older messages");
  const seen = await messageCount(page);
  const anchor = await firstVisible(page);
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=message]").length > n, seen, { timeout: 30000 });
  await page.waitForTimeout(300);
  const after = await topOf(page, anchor.id);
  assert.ok(Math.abs(after - anchor.top) <= 1, `the view jumped by ${after - anchor.top}px when older messages arrived`);
  await page.screenshot({ path: join(ART, `${env.kind}-history-phone.png`) });
  await scrollToTheStart(page, stats, () => scrollUp(800));
  await page.screenshot({ path: join(ART, `${env.kind}-history-start-phone.png`) });
  await page.context().close();
});

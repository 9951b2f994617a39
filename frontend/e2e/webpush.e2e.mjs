// Web Push end to end on WSPR (its own push gateway): the app subscribes and registers an http pusher
// pointing at WSPR's /_matrix/push/v1/notify; with the app closed, a message makes WSPR's pusher call
// the gateway, which sends Web Push to a push service on loopback (this test); the test decrypts it as
// the browser would (RFC 8291, node:crypto) and hands it to the app's service worker as a push event
// (DevTools' ServiceWorker.deliverPushMessage), which shows the notification.
//
// What is simulated: the browser's push service. Chromium's own one is not reachable here, so
// PushManager.subscribe is replaced (in the test's browser only) by one returning a subscription with
// a real P-256 key pair and auth secret whose endpoint is the loopback service. Everything else is real.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createDecipheriv, createECDH, hkdfSync } from "node:crypto";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerInApp, startEnvironment } from "./browser.mjs";

const run = Date.now().toString(36).slice(-5);
const enc = encodeURIComponent;
let env, alice, bob, aliceToken, bobId, garden, dm, service, serviceUrl;
const pushes = [];
let onPush = null;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-webpush-${name}.png`) });

/** A subscription whose endpoint is `endpoint`, with real keys (what PushManager.subscribe returns). */
function stubPushManager(endpoint) {
  const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  let sub = null;
  PushManager.prototype.getSubscription = async () => sub;
  PushManager.prototype.subscribe = async (options) => {
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
    const pub = await crypto.subtle.exportKey("raw", pair.publicKey);
    const auth = crypto.getRandomValues(new Uint8Array(16));
    const keys = { p256dh: b64u(pub), auth: b64u(auth) };
    window.__push = { jwk: await crypto.subtle.exportKey("jwk", pair.privateKey), ...keys };
    sub = {
      endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true, applicationServerKey: new Uint8Array(options.applicationServerKey).buffer },
      getKey: (name) => (name === "p256dh" ? pub : auth.buffer),
      toJSON: () => ({ endpoint, expirationTime: null, keys }),
      unsubscribe: async () => ((sub = null), true),
    };
    return sub;
  };
}

/** RFC 8291 §3.4: the message, decrypted with the browser's private key and auth secret. */
function decrypt(body, jwk, authB64) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const sender = body.subarray(21, 21 + idlen);
  const ciphertext = body.subarray(21 + idlen);
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(Buffer.from(jwk.d, "base64url"));
  const shared = ecdh.computeSecret(sender);
  const info = Buffer.concat([Buffer.from("WebPush: info\0"), ecdh.getPublicKey(), sender]);
  const ikm = Buffer.from(hkdfSync("sha256", shared, Buffer.from(authB64, "base64url"), info, 32));
  const cek = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
  const nonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
  const d = createDecipheriv("aes-128-gcm", cek, nonce);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  const padded = Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - 16)), d.final()]);
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0) end--;
  assert.equal(padded[end - 1], 2, "the last record's delimiter");
  return JSON.parse(padded.subarray(0, end - 1).toString("utf8"));
}

function nextPush(timeout = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no push reached the push service")), timeout);
    onPush = (p) => {
      clearTimeout(timer);
      onPush = null;
      resolve(p);
    };
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

async function openNotificationSettings(page) {
  await page.getByTestId("open-settings").click();
  await page.getByRole("tab", { name: "Notifications" }).click();
  await page.getByTestId("notifications-tab").waitFor();
}

before(async () => {
  service = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const p = { path: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      pushes.push(p);
      res.writeHead(201).end();
      onPush?.(p);
    });
  });
  await new Promise((r) => service.listen(0, "127.0.0.1", r));
  serviceUrl = `http://127.0.0.1:${service.address().port}`;
  // the pusher reaches the gateway, and the gateway the push service, on loopback
  env = await startEnvironment({ kind: "wspr", name: "webpush", wsprConfig: "c.setdefault('federation', {})['ip_range_allowlist'] = ['127.0.0.0/8', '::1/128']" });
  alice = await newPage(env, "alice", { colorScheme: "light", permissions: ["notifications"] });
  await alice.context().addInitScript(stubPushManager, `${serviceUrl}/push/alice`);
  bob = await newPage(env, "bob", { colorScheme: "dark" });
  await Promise.all([registerInApp(env, alice, `alice${run}`), registerInApp(env, bob, `bob${run}`)]);
  aliceToken = await accessToken(alice);
  const bobToken = await accessToken(bob);
  bobId = `@bob${run}:localhost`;
  await api(env, bobToken, "PUT", `/_matrix/client/v3/profile/${enc(bobId)}/displayname`, { displayname: "Bob Builder" });
  garden = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Garden", preset: "private_chat", invite: [bobId] })).room_id;
  dm = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", {
    is_direct: true,
    preset: "trusted_private_chat",
    invite: [bobId],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  })).room_id;
  for (const r of [garden, dm]) await api(env, bobToken, "POST", `/_matrix/client/v3/join/${enc(r)}`, {});
  await bob.locator(`[data-testid=room-row][data-room-id="${dm}"]`).waitFor({ timeout: 30000 });
});

after(async () => {
  await env?.stop();
  service?.close();
});

test("headless Chromium refuses a real push subscription (why the subscription is simulated)", async () => {
  const info = await api(env, null, "GET", "/_wspr/push/v1/web");
  const probe = await newPage(env, "probe", { permissions: ["notifications"] });
  await probe.goto(env.appUrl);
  const outcome = await probe.evaluate(async (key) => {
    const reg = await navigator.serviceWorker.ready;
    const raw = Uint8Array.from(atob(key.replace(/-/g, "+").replace(/_/g, "/") + "==".slice(0, (4 - (key.length % 4)) % 4)), (c) => c.charCodeAt(0));
    try {
      const sub = await Promise.race([reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: raw }), new Promise((_, no) => setTimeout(() => no(new Error("no answer in 20 s")), 20000))]);
      return `subscribed: ${sub.endpoint}`;
    } catch (e) {
      return `${e.name}: ${e.message}`;
    }
  }, info.vapid_public_key);
  console.log(`# PushManager.subscribe in this Chromium: ${outcome}`);
  await probe.context().close();
});

test("the app registers its subscription as an http pusher to WSPR's gateway", async () => {
  await openNotificationSettings(alice);
  const toggle = alice.getByTestId("web-push");
  await toggle.click(); // the box turns on once the pusher is registered
  await alice.waitForFunction(() => !!window.__push);
  await alice.waitForFunction(() => document.querySelector("[data-testid=web-push]")?.checked === true && !document.querySelector("[data-testid=web-push]")?.disabled);
  const { pushers } = await api(env, aliceToken, "GET", "/_matrix/client/v3/pushers");
  const keys = await alice.evaluate(() => window.__push);
  assert.equal(pushers.length, 1);
  const p = pushers[0];
  assert.equal(p.kind, "http");
  assert.equal(p.app_id, "org.wspr.web");
  assert.equal(p.pushkey, keys.p256dh);
  assert.equal(p.data.endpoint, `${serviceUrl}/push/alice`);
  assert.equal(p.data.auth, keys.auth);
  assert.match(p.data.url, /^http:\/\/localhost:\d+\/_matrix\/push\/v1\/notify$/);
  await shot(alice, "01-settings-desktop-light");
  await alice.setViewportSize({ width: 390, height: 844 });
  await shot(alice, "02-settings-phone-light");
  await alice.setViewportSize({ width: 1280, height: 800 });
  await alice.keyboard.press("Escape");
  await openNotificationSettings(bob);
  await bob.getByTestId("web-push").waitFor();
  await shot(bob, "03-settings-desktop-dark");
  await bob.setViewportSize({ width: 390, height: 844 });
  await shot(bob, "04-settings-phone-dark");
  await bob.setViewportSize({ width: 1280, height: 800 });
  await bob.keyboard.press("Escape");
});

let swRegistrationId;
let cdp;
let worker;

test("with the app closed, messages arrive as Web Push; the service worker shows them", async () => {
  const keys = await alice.evaluate(() => window.__push);
  const context = alice.context();
  worker = context.serviceWorkers()[0] ?? (await context.waitForEvent("serviceworker"));
  // the app is closed: only a blank page stays, for DevTools to talk to the worker through
  const blank = await context.newPage();
  await alice.close();
  cdp = await context.newCDPSession(blank);
  const registrations = new Promise((resolve) => cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => resolve(e.registrations)));
  await cdp.send("ServiceWorker.enable");
  swRegistrationId = (await registrations).find((r) => env.appUrl.startsWith(r.scopeURL) || r.scopeURL.startsWith(new URL(env.appUrl).origin)).registrationId;
  const deliver = async (payload) => {
    await worker.evaluate(() => {
      self.__shown ??= [];
      if (!self.__wrapped) {
        self.__wrapped = true;
        const show = self.registration.showNotification.bind(self.registration);
        self.registration.showNotification = (title, options) => (self.__shown.push({ title, body: options.body, tag: options.tag, roomId: options.data?.roomId }), show(title, options));
      }
    });
    await cdp.send("ServiceWorker.deliverPushMessage", { origin: new URL(env.appUrl).origin, registrationId: swRegistrationId, data: JSON.stringify(payload) });
  };

  // an unencrypted room: the text travels (encrypted for this browser only)
  await openRoom(bob, garden);
  let arrived = nextPush();
  await send(bob, "web push hello");
  let push = await arrived;
  assert.equal(push.path, "/push/alice");
  assert.equal(push.headers["content-encoding"], "aes128gcm");
  assert.match(push.headers.authorization, /^vapid t=[\w-]+\.[\w-]+\.[\w-]+,k=[\w-]+$/);
  assert.ok(!push.body.includes("web push hello"), "the push service sees ciphertext");
  const text = decrypt(push.body, keys.jwk, keys.auth);
  assert.equal(text.room_id, garden);
  assert.equal(text.room_name, "Garden");
  assert.equal(text.sender_display_name, "Bob Builder");
  assert.deepEqual(text.content, { msgtype: "m.text", body: "web push hello" });
  await deliver(text);
  await worker.evaluate(() => new Promise((r) => setTimeout(r, 500)));
  let shown = await worker.evaluate(() => self.__shown);
  assert.deepEqual(shown.at(-1), { title: "Garden", body: "Bob Builder: web push hello", tag: garden, roomId: garden });

  // an encrypted DM: the server has nothing to show, the notification says "New message"
  await openRoom(bob, dm);
  arrived = nextPush();
  await send(bob, "the code is 4711");
  push = await arrived;
  const secret = decrypt(push.body, keys.jwk, keys.auth);
  assert.equal(secret.type, "m.room.encrypted");
  assert.equal(secret.content, undefined);
  assert.ok(!JSON.stringify(secret).includes("4711"));
  await deliver(secret);
  await worker.evaluate(() => new Promise((r) => setTimeout(r, 500)));
  shown = await worker.evaluate(() => self.__shown);
  assert.deepEqual(shown.at(-1), { title: "Bob Builder", body: "New message", tag: dm, roomId: dm });
  const listed = await worker.evaluate(async () => (await self.registration.getNotifications()).map((n) => ({ title: n.title, body: n.body })));
  console.log(`# notifications listed by the browser: ${JSON.stringify(listed)}`);

  // with the app open and visible, the worker leaves notifying to the app (decrypted, not for the room on screen)
  const reopened = await context.newPage();
  await reopened.goto(env.appUrl);
  await reopened.getByTestId("room-list").waitFor({ timeout: 60000 });
  const before = shown.length;
  await deliver(text);
  await worker.evaluate(() => new Promise((r) => setTimeout(r, 500)));
  assert.equal((await worker.evaluate(() => self.__shown)).length, before, "no push notification over a visible app");
  alice = reopened;
});

test("turning Web Push off removes the pusher", async () => {
  await openNotificationSettings(alice);
  await alice.getByTestId("web-push").click();
  await alice.waitForFunction(() => document.querySelector("[data-testid=web-push]")?.checked === false && !document.querySelector("[data-testid=web-push]")?.disabled);
  const { pushers } = await api(env, aliceToken, "GET", "/_matrix/client/v3/pushers");
  assert.deepEqual(pushers, []);
});

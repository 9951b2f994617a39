// Headless matrix-js-sdk (Rust crypto) clients against WSPR, one on each kind of sync:
// alice on simplified sliding sync (the SDK's SlidingSync), bob on /sync, dave on the
// WebSocket stream (the SDK's own /sync loop served from the socket by ws_sync_fetch.mjs):
//  1. alice creates an encrypted room and invites bob and dave; they join;
//  2. each sends a message and the other two decrypt it: dave's room keys (and the
//     device list changes that make the others send them) arrive over the socket as
//     to-device messages; his own keys go to the others through their syncs;
//  3. dave's socket is dropped (the network goes), a message is sent meanwhile, and he
//     gets and decrypts it after the SDK reconnects from its token.
// Usage: node websocket.mjs <base_url> <alice> <bob> <dave> <password>
// Prints progress on stderr and "WEBSOCKET-OK {json}" on stdout when every check passed.

if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
await import("fake-indexeddb/auto");
const sdk = await import("matrix-js-sdk");
const { SlidingSync } = await import("matrix-js-sdk/lib/sliding-sync.js");
const { webSocketSyncFetch } = await import("./ws_sync_fetch.mjs");

const [baseUrl, aliceName, bobName, daveName, password] = process.argv.slice(2);
if (!password) {
  console.error("usage: node websocket.mjs <base_url> <alice> <bob> <dave> <password>");
  process.exit(2);
}
try {
  sdk.logger.setLevel?.("warn");
} catch {
  /* keep the default */
}

const log = (...args) => console.error("[websocket.mjs]", ...args);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 40000, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

const versions = await (await fetch(baseUrl + "/_matrix/client/versions")).json();
if (versions.unstable_features?.["org.wspr.websocket"] !== true) throw new Error("the server does not offer the WebSocket stream");

const ROOM_CONFIG = { timeline_limit: 20, required_state: [["*", "*"]] };
const stream = { opens: 0, closes: [], httpSyncs: 0 };

async function login(user, kind) {
  const anon = sdk.createClient({ baseUrl });
  const res = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: `js-${kind}-${user}`,
  });
  const opts = { baseUrl, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id };
  let wsFetch = null;
  if (kind === "websocket") {
    const realFetch = (resource, init) => {
      if (String(resource instanceof Request ? resource.url : resource).includes("/sync?")) stream.httpSyncs += 1;
      return globalThis.fetch(resource, init);
    };
    wsFetch = webSocketSyncFetch(baseUrl, {
      fetchFn: realFetch,
      onEvent: (what, code) => (what === "open" ? (stream.opens += 1) : stream.closes.push(code)),
    });
    opts.fetchFn = wsFetch;
  }
  const client = sdk.createClient(opts);
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED") resolve();
    });
  });
  const startOpts = { initialSyncLimit: 20, pollTimeout: 2000 };
  if (kind === "sliding") {
    startOpts.slidingSync = new SlidingSync(
      baseUrl,
      new Map([["all", { ranges: [[0, 50]], ...ROOM_CONFIG }]]),
      ROOM_CONFIG,
      client,
      2000,
    );
  }
  await client.startClient(startOpts);
  await prepared;
  log(`${res.user_id} (${kind}) logged in as device ${res.device_id}`);
  client.wsFetch = wsFetch;
  return client;
}

async function decryptedBodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  const out = [];
  for (const ev of room.getLiveTimeline().getEvents()) {
    if (ev.isEncrypted() || ev.getWireType() === "m.room.encrypted") {
      await client.decryptEventIfNeeded(ev);
    }
    if (ev.getType() === "m.room.message" && !ev.isDecryptionFailure()) {
      out.push(ev.getContent().body);
    }
  }
  return out;
}

const alice = await login(aliceName, "sliding");
const bob = await login(bobName, "sync");
const dave = await login(daveName, "websocket");
const clients = [alice, bob, dave];

try {
  const { room_id: roomId } = await alice.createRoom({
    name: "websocket",
    invite: [bob.getUserId(), dave.getUserId()],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  log("room", roomId);
  for (const c of [bob, dave]) {
    await waitFor(`${c.getUserId()}'s invite`, () => c.getRoom(roomId)?.getMyMembership() === "invite");
    await c.joinRoom(roomId);
  }
  for (const c of clients) {
    await waitFor(`${c.getUserId()} to see encryption`, () => c.getCrypto().isEncryptionEnabledInRoom(roomId));
    for (const other of clients) {
      await waitFor(
        `${c.getUserId()} to see ${other.getUserId()} joined`,
        () => c.getRoom(roomId)?.getMember(other.getUserId())?.membership === "join",
      );
    }
  }
  log("everyone joined and sees the room encrypted");

  const sent = [];
  async function exchange(sender, body) {
    await sender.sendMessage(roomId, { msgtype: "m.text", body });
    sent.push(body);
    for (const reader of clients) {
      if (reader === sender) continue;
      await waitFor(`${reader.getUserId()} to decrypt "${body}"`, async () =>
        (await decryptedBodies(reader, roomId)).includes(body),
      );
    }
    log(`"${body}" decrypted by the other two`);
  }
  await exchange(alice, "hello from alice on sliding sync");
  await exchange(bob, "hello from bob on /sync");
  await exchange(dave, "hello from dave on the websocket");

  // The network goes: dave's socket closes under him; a message arrives meanwhile.
  const opensBefore = stream.opens;
  dave.wsFetch.close();
  await bob.sendMessage(roomId, { msgtype: "m.text", body: "sent while dave was away" });
  sent.push("sent while dave was away");
  await waitFor("dave to decrypt what was sent while away", async () =>
    (await decryptedBodies(dave, roomId)).includes("sent while dave was away"),
  );
  if (stream.opens <= opensBefore) throw new Error("dave did not reconnect");
  const daveBodies = await decryptedBodies(dave, roomId);
  for (const body of sent) {
    if (daveBodies.filter((b) => b === body).length !== 1) throw new Error(`dave has "${body}" ${daveBodies.filter((b) => b === body).length} times`);
  }
  if (stream.httpSyncs !== 0) throw new Error(`dave made ${stream.httpSyncs} HTTP /sync requests`);
  console.log("WEBSOCKET-OK " + JSON.stringify({ roomId, sent, stream }));
} finally {
  for (const c of clients) c.stopClient();
  dave.wsFetch?.close();
}
process.exit(0);

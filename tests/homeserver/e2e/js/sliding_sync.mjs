// Headless matrix-js-sdk (Rust crypto) clients against a homeserver, two of them on
// simplified sliding sync (MSC4186, the SDK's SlidingSync class) and one on /sync:
//  1. alice (sliding sync) creates an encrypted room and invites bob (/sync) and carol
//     (sliding sync): each sees the invite and joins;
//  2. each sends a message, and the other two decrypt it: the room keys travel as
//     to-device messages (the to_device extension for the sliding sync clients) to
//     devices found through device list changes (the e2ee extension).
// Usage: node sliding_sync.mjs <base_url> <alice> <bob> <carol> <password>
// Prints progress on stderr and "SLIDING-SYNC-OK {json}" on stdout when every check passed.

// Node 20 lacks Promise.withResolvers, which the SDK uses: polyfill before importing it.
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

const [baseUrl, aliceName, bobName, carolName, password] = process.argv.slice(2);
if (!password) {
  console.error("usage: node sliding_sync.mjs <base_url> <alice> <bob> <carol> <password>");
  process.exit(2);
}
try {
  sdk.logger.setLevel?.("warn");
} catch {
  /* keep the default */
}

const log = (...args) => console.error("[sliding_sync.mjs]", ...args);
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

// What Element-style clients ask for: the top rooms with their state and recent timeline.
const ROOM_CONFIG = { timeline_limit: 20, required_state: [["*", "*"]] };

async function login(user, sliding) {
  const anon = sdk.createClient({ baseUrl });
  const res = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: `js-${sliding ? "ss" : "sync"}-${user}`,
  });
  const client = sdk.createClient({ baseUrl, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id });
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED") resolve();
    });
  });
  const opts = { initialSyncLimit: 20, pollTimeout: 2000 };
  let slidingSync = null;
  if (sliding) {
    // Short long-polls (2 s): when the script ends, the server's parked requests end soon after.
    slidingSync = new SlidingSync(
      baseUrl,
      new Map([["all", { ranges: [[0, 50]], ...ROOM_CONFIG }]]),
      ROOM_CONFIG,
      client,
      2000,
    );
    opts.slidingSync = slidingSync;
  }
  await client.startClient(opts);
  await prepared;
  log(`${res.user_id} (${sliding ? "sliding sync" : "/sync"}) logged in as device ${res.device_id}`);
  return client;
}

// Decrypted bodies of m.room.message events in the room's live timeline.
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

const alice = await login(aliceName, true);
const bob = await login(bobName, false);
const carol = await login(carolName, true);
const clients = [alice, bob, carol];

try {
  const { room_id: roomId } = await alice.createRoom({
    name: "sliding",
    invite: [bob.getUserId(), carol.getUserId()],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  log("room", roomId);
  for (const c of [bob, carol]) {
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
  for (const [sender, body] of [
    [alice, "hello from alice on sliding sync"],
    [bob, "hello from bob on /sync"],
    [carol, "hello from carol on sliding sync"],
  ]) {
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
  // The sliding sync clients learnt the room from the room list, with its name.
  for (const c of [alice, carol]) {
    if (c.getRoom(roomId)?.name !== "sliding") throw new Error(`${c.getUserId()} sees name ${c.getRoom(roomId)?.name}`);
  }
  console.log("SLIDING-SYNC-OK " + JSON.stringify({ roomId, sent }));
} finally {
  for (const c of clients) c.stopClient();
}
process.exit(0);

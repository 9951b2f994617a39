// matrix-js-sdk peeking into a world-readable room it has not joined (client.peekInRoom):
// GET /rooms/{roomId}/initialSync for the room's state and last messages, then a
// long-poll on GET /events?room_id= for what follows. Two peekers: a registered user
// who is not a member, and a guest (registerGuest), as Element previews rooms.
//  1. alice creates a world-readable public room, names it and sends two messages;
//  2. each peeker peeks: the room's name and the two messages are there;
//  3. alice sends more: each peeker's live timeline gets them through /events.
// Usage: node peek.mjs <base_url> <alice> <bob> <password>
// Prints progress on stderr and "PEEK-OK {json}" on stdout when every check passed.

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
const sdk = await import("matrix-js-sdk");

const [baseUrl, aliceName, bobName, password] = process.argv.slice(2);
if (!password) {
  console.error("usage: node peek.mjs <base_url> <alice> <bob> <password>");
  process.exit(2);
}
try {
  sdk.logger.setLevel?.("warn");
} catch {
  /* keep the default */
}

const log = (...args) => console.error("[peek.mjs]", ...args);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 40000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

async function login(user) {
  const anon = sdk.createClient({ baseUrl });
  const res = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
  });
  return sdk.createClient({ baseUrl, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id });
}

async function guest() {
  const anon = sdk.createClient({ baseUrl });
  const res = await anon.registerGuest({ body: {} });
  const client = sdk.createClient({ baseUrl, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id });
  client.setGuest(true);
  return client;
}

const bodies = (room) =>
  room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === "m.room.message")
    .map((e) => e.getContent().body);

try {
  const alice = await login(aliceName);
  const { room_id: roomId } = await alice.createRoom({
    preset: "public_chat",
    name: "Peek here",
    initial_state: [
      { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "world_readable" } },
    ],
  });
  log("room", roomId);
  await alice.sendTextMessage(roomId, "before 1");
  await alice.sendTextMessage(roomId, "before 2");

  const peekers = { member: await login(bobName), guest: await guest() };
  const rooms = {};
  for (const [label, client] of Object.entries(peekers)) {
    const room = await client.peekInRoom(roomId);
    rooms[label] = room;
    log(label, "peeked:", room.name, bodies(room));
    if (room.name !== "Peek here") throw new Error(`${label}: room name ${room.name}`);
    const seen = bodies(room);
    if (seen.join("|") !== "before 1|before 2") throw new Error(`${label}: initial timeline ${seen}`);
  }
  // js-sdk's first /events call has no `from`: what is sent before it is parked would
  // be missed (by any server). Give both long-polls time to be waiting.
  await sleep(1500);
  await alice.sendTextMessage(roomId, "after 1");
  await alice.sendTextMessage(roomId, "after 2");
  for (const [label, room] of Object.entries(rooms)) {
    await waitFor(`${label} to see the new messages`, () => bodies(room).includes("after 2"));
    log(label, "live:", bodies(room));
  }
  // The live timeline holds the new messages in order, once each.
  const result = {};
  for (const [label, room] of Object.entries(rooms)) {
    result[label] = bodies(room);
    if (result[label].join("|") !== "before 1|before 2|after 1|after 2") {
      throw new Error(`${label}: timeline ${result[label]}`);
    }
  }
  for (const client of Object.values(peekers)) {
    client.stopPeeking();
    client.stopClient();
  }
  alice.stopClient();
  console.log("PEEK-OK " + JSON.stringify({ roomId, timelines: result }));
  process.exit(0);
} catch (e) {
  log("FAILED", e?.stack || e);
  process.exit(1);
}

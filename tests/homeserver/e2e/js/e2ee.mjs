// Headless matrix-js-sdk (Rust crypto) clients against a homeserver:
//  1. alice and bob exchange messages in an encrypted room and decrypt each other's;
//  2. alice bootstraps cross-signing, secret storage and a key backup (recovery key);
//  3. alice logs in on a new device, restores the backup with the recovery key and
//     decrypts the old messages;
//  4. that device sets up a dehydrated device (MSC3814); with all of alice's devices
//     offline bob sends a message; a newly logged-in device rehydrates and decrypts it.
// Usage: node e2ee.mjs <base_url> <alice_localpart> <bob_localpart> <password>
// Prints progress on stderr and "E2EE-JS-OK {json}" on stdout when every check passed.

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
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");

const [baseUrl, aliceName, bobName, password] = process.argv.slice(2);
if (!password) {
  console.error("usage: node e2ee.mjs <base_url> <alice> <bob> <password>");
  process.exit(2);
}

try {
  sdk.logger.setLevel?.("warn");
} catch {
  /* older/newer logger API: keep the default */
}

const log = (...args) => console.error("[e2ee.mjs]", ...args);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 30000, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

async function login(user, secretStorageKeyRef) {
  const anon = sdk.createClient({ baseUrl });
  const res = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: `js-${user}`,
  });
  const client = sdk.createClient({
    baseUrl,
    accessToken: res.access_token,
    userId: res.user_id,
    deviceId: res.device_id,
    cryptoCallbacks: {
      // Secret storage asks for its key here: we hand out the recovery key we hold.
      getSecretStorageKey: async ({ keys }) => {
        const key = secretStorageKeyRef.current;
        if (!key) return null;
        const keyId = Object.keys(keys)[0];
        return [keyId, key];
      },
    },
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED") resolve();
    });
  });
  // Short long-polls: when the script ends, the server's parked /syncs end soon after.
  await client.startClient({ initialSyncLimit: 30, pollTimeout: 2000 });
  await prepared;
  log(`${res.user_id} logged in as device ${res.device_id}`);
  return client;
}

async function uiaPassword(client, user, makeRequest) {
  try {
    return await makeRequest(null);
  } catch (e) {
    const session = e?.data?.session;
    if (!session) throw e;
    return await makeRequest({
      type: "m.login.password",
      identifier: { type: "m.id.user", user },
      password,
      session,
    });
  }
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

async function backupCount(client) {
  const res = await fetch(`${baseUrl}/_matrix/client/v3/room_keys/version`, {
    headers: { Authorization: `Bearer ${client.getAccessToken()}` },
  });
  if (res.status !== 200) return 0;
  return (await res.json()).count;
}

const aliceKey = { current: null };
const bobKey = { current: null };
const alice = await login(aliceName, aliceKey);
const bob = await login(bobName, bobKey);
const clients = [alice, bob];

try {
  // -- cross-signing, secret storage and key backup for alice -------------------------
  const aliceCrypto = alice.getCrypto();
  await aliceCrypto.bootstrapCrossSigning({
    authUploadDeviceSigningKeys: (makeRequest) => uiaPassword(alice, aliceName, makeRequest),
  });
  const recoveryKey = await aliceCrypto.createRecoveryKeyFromPassphrase();
  aliceKey.current = recoveryKey.privateKey;
  await aliceCrypto.bootstrapSecretStorage({
    createSecretStorageKey: async () => recoveryKey,
    setupNewSecretStorage: true,
    setupNewKeyBackup: true,
  });
  const status = await aliceCrypto.getCrossSigningStatus();
  log("alice cross-signing status", JSON.stringify(status));
  if (!status.publicKeysOnDevice || !status.privateKeysInSecretStorage) {
    throw new Error("cross-signing was not set up");
  }
  const backupInfo = await aliceCrypto.getKeyBackupInfo();
  if (!backupInfo?.version) throw new Error("no key backup version on the server");
  log("key backup version", backupInfo.version);
  await aliceCrypto.checkKeyBackupAndEnable();

  // -- encrypted room ----------------------------------------------------------------------
  const { room_id: roomId } = await alice.createRoom({
    invite: [bob.getUserId()],
    initial_state: [
      { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
    ],
  });
  await waitFor("bob's invite", () => bob.getRoom(roomId));
  await bob.joinRoom(roomId);
  for (const c of clients) {
    await waitFor(`${c.getUserId()} to see encryption`, () => c.getCrypto().isEncryptionEnabledInRoom(roomId));
  }
  await waitFor("alice to see bob joined", () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join");

  await alice.sendMessage(roomId, { msgtype: "m.text", body: "hello bob from js" });
  await waitFor("bob to decrypt alice's message", async () =>
    (await decryptedBodies(bob, roomId)).includes("hello bob from js"),
  );
  log("bob decrypted alice's message");
  await bob.sendMessage(roomId, { msgtype: "m.text", body: "hi alice from js" });
  await waitFor("alice to decrypt bob's message", async () =>
    (await decryptedBodies(alice, roomId)).includes("hi alice from js"),
  );
  log("alice decrypted bob's message");

  // Bob sees alice's device signed by her self-signing key (keys/query + signatures;
  // sharing the room put alice in bob's device_lists.changed, so his view is fresh).
  const aliceDeviceStatus = await waitFor("bob to see alice's device cross-signed", async () => {
    await bob.getCrypto().getUserDeviceInfo([alice.getUserId()], true);
    const s = await bob.getCrypto().getDeviceVerificationStatus(alice.getUserId(), alice.getDeviceId());
    return s?.signedByOwner ? s : null;
  });
  log("bob sees alice's device signedByOwner", aliceDeviceStatus.signedByOwner);

  // Both sessions (alice's outbound, bob's inbound) reach the backup (the SDK uploads in
  // the background after a random delay of up to ~10 s).
  await waitFor("room keys in the backup", async () => (await backupCount(alice)) >= 2, 60000, 500);
  log("backup holds", await backupCount(alice), "keys");

  // -- a new device restores the backup with the recovery key -------------------------
  const alice2Key = { current: cryptoApi.decodeRecoveryKey(recoveryKey.encodedPrivateKey) };
  const alice2 = await login(aliceName, alice2Key);
  clients.push(alice2);
  const crypto2 = alice2.getCrypto();
  await waitFor("old messages in alice2's timeline", async () => {
    const room = alice2.getRoom(roomId);
    return room && room.getLiveTimeline().getEvents().filter((e) => e.getWireType() === "m.room.encrypted").length >= 2;
  });
  const before = await decryptedBodies(alice2, roomId);
  if (before.length) throw new Error(`new device decrypted without the backup: ${before}`);
  await crypto2.loadSessionBackupPrivateKeyFromSecretStorage();
  const restored = await crypto2.restoreKeyBackup();
  log("restored from backup", JSON.stringify(restored));
  await waitFor("alice2 to decrypt old messages", async () => {
    const bodies = await decryptedBodies(alice2, roomId);
    return bodies.includes("hello bob from js") && bodies.includes("hi alice from js");
  });
  log("new device decrypted the old messages from the backup");

  // -- a dehydrated device (MSC3814) receives keys while alice is offline ---------------
  // (Dehydration needs the cross-signing keys: the first device holds them.)
  if (!(await aliceCrypto.isDehydrationSupported())) throw new Error("server does not offer dehydrated devices");
  await aliceCrypto.startDehydration();
  const dehydrated = await waitFor("a dehydrated device", async () => {
    const res = await fetch(`${baseUrl}/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`, {
      headers: { Authorization: `Bearer ${alice.getAccessToken()}` },
    });
    return res.status === 200 ? (await res.json()).device_id : null;
  });
  log("dehydrated device", dehydrated);
  // Every one of alice's real devices goes offline.
  alice.stopClient();
  alice2.stopClient();
  // bob learns about the dehydrated device and sends with a brand-new megolm session, so
  // only devices that exist now (the dehydrated one among them) can get its key.
  await waitFor("bob to see alice's dehydrated device", async () => {
    const devices = await bob.getCrypto().getUserDeviceInfo([alice.getUserId()], true);
    return devices.get(alice.getUserId())?.has(dehydrated);
  });
  await bob.getCrypto().forceDiscardSession(roomId);
  await bob.sendMessage(roomId, { msgtype: "m.text", body: "while you were away" });
  log("bob sent a message while alice was offline");
  const alice3 = await login(aliceName, alice2Key);
  clients.push(alice3);
  // The new device takes the cross-signing keys from secret storage (recovery key), then
  // rehydrates the dehydrated device and collects the room keys it received.
  // (Importing them needs the public keys first: wait until alice3 has her own identity.)
  await waitFor("alice3 to know her cross-signing identity", () =>
    alice3.getCrypto().userHasCrossSigningKeys(alice3.getUserId(), true),
  );
  await alice3.getCrypto().bootstrapCrossSigning({
    authUploadDeviceSigningKeys: (makeRequest) => uiaPassword(alice3, aliceName, makeRequest),
  });
  await alice3.getCrypto().startDehydration();
  await waitFor("alice3 to decrypt the message sent while she was away", async () =>
    (await decryptedBodies(alice3, roomId)).includes("while you were away"),
  );
  log("rehydrated device's keys decrypted the message sent while alice was offline");
  // The SDK logs to the console too: the result is the one line with this marker.
  console.log("E2EE-JS-OK " + JSON.stringify({ roomId, backupVersion: backupInfo.version }));
} finally {
  for (const c of clients) c.stopClient();
}
process.exit(0);

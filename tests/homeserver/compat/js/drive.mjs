// matrix-js-sdk (no encryption) as a real client against a live WSPR.
//
//   node drive.mjs http://127.0.0.1:PORT
//
// Two users, each with the SDK's own sync loop (lazy-loading members, thread support on,
// as Element Web runs it), go through a chat: login, invite/join, name/topic, text,
// reply, edit, reaction, redaction, thread, receipts, typing, scrollback from a third
// client, leave. Every step checks what the *other* client saw through its sync.
// Prints "OK <steps>" and exits 0, or prints the failing step and exits 1.

// matrix-js-sdk 43 needs Node 22's Promise.withResolvers; Node 20 lacks it.
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function () {
        let resolve, reject;
        const promise = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}

// The SDK logs every sync step through console.*: keep the output to our own lines
// unless asked (SDK_LOG=1). Our own output goes through `say`.
const say = (...a) => process.stdout.write(a.join(" ") + "\n");
if (!process.env.SDK_LOG) {
    for (const k of ["log", "debug", "info", "warn", "trace"]) console[k] = () => {};
}

const sdk = await import("matrix-js-sdk");

const BASE = process.argv[2];
if (!BASE) {
    console.error("usage: node drive.mjs BASE_URL");
    process.exit(2);
}
const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 15000);
const PASSWORD = "correct horse battery";
const steps = [];
// Every HTTP exchange the SDK makes goes through this: any 5xx fails the run, and 4xx
// answers are listed (the SDK probes optional endpoints and expects some 404s).
const serverErrors = [];
const clientErrors = [];
async function fetchFn(input, init) {
    const res = await fetch(input, init);
    const url = String(input?.url ?? input).replace(BASE, "");
    if (res.status >= 500) serverErrors.push(`${init?.method ?? "GET"} ${url} -> ${res.status}`);
    else if (res.status >= 400) clientErrors.push(`${init?.method ?? "GET"} ${url.split("?")[0]} -> ${res.status}`);
    return res;
}
let current = "start";

function step(name) {
    current = name;
    steps.push(name);
    if (process.env.VERBOSE) say("step:", name);
}

function check(cond, msg) {
    if (!cond) throw new Error(`check failed: ${msg}`);
}

// Polls until fn() returns a truthy value (or throws after the timeout).
async function until(what, fn, timeout = STEP_TIMEOUT_MS) {
    const end = Date.now() + timeout;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

async function register(username) {
    const url = `${BASE}/_matrix/client/v3/register`;
    const body = { username, password: PASSWORD, inhibit_login: true };
    let r = await fetch(url, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    const first = await r.json();
    check(r.status === 401 && first.session, `register ${username}: UIA 401 expected, got ${r.status}`);
    r = await fetch(url, {
        method: "POST",
        body: JSON.stringify({ ...body, auth: { type: "m.login.dummy", session: first.session } }),
        headers: { "Content-Type": "application/json" },
    });
    check(r.status === 200, `register ${username}: ${r.status} ${await r.text()}`);
}

// A logged-in client with its own sync loop, as Element would start it.
async function login(username, opts = {}) {
    const anon = sdk.createClient({ baseUrl: BASE, fetchFn });
    const flows = await anon.loginFlows();
    check(flows.flows.some((f) => f.type === "m.login.password"), "password login flow offered");
    const res = await anon.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: username },
        password: PASSWORD,
        initial_device_display_name: `js-sdk ${username}`,
    });
    const client = sdk.createClient({
        baseUrl: BASE,
        accessToken: res.access_token,
        userId: res.user_id,
        deviceId: res.device_id,
        timelineSupport: true,
        fetchFn,
    });
    const prepared = new Promise((resolve, reject) => {
        client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
            if (state === "PREPARED") resolve();
            if (state === "ERROR") reject(new Error(`sync error for ${username}: ${data?.error}`));
        });
    });
    await client.startClient({
        lazyLoadMembers: true,
        threadSupport: true,
        initialSyncLimit: opts.initialSyncLimit ?? 20,
    });
    await Promise.race([
        prepared,
        new Promise((_, rej) => setTimeout(() => rej(new Error(`${username}: initial sync timed out`)), STEP_TIMEOUT_MS)),
    ]);
    return client;
}

function liveEvents(client, roomId) {
    const room = client.getRoom(roomId);
    return room ? room.getLiveTimeline().getEvents() : [];
}

// An event by id from anywhere the client keeps it: main timeline or a thread.
function findEvent(client, roomId, eventId) {
    const room = client.getRoom(roomId);
    if (!room) return null;
    return room.findEventById(eventId) || null;
}

async function main() {
    const suffix = Math.random().toString(36).slice(2, 8);
    const aliceName = `alice${suffix}`;
    const bobName = `bob${suffix}`;

    step("register");
    await register(aliceName);
    await register(bobName);

    step("login + initial sync");
    const alice = await login(aliceName);
    const bob = await login(bobName);
    const bobId = bob.getUserId();
    const aliceId = alice.getUserId();

    step("versions/capabilities");
    const caps = await alice.getCapabilities();
    check(caps && typeof caps === "object", "capabilities object");

    step("create room + invite");
    const { room_id: roomId } = await alice.createRoom({
        name: "Compat room",
        preset: sdk.Preset.PrivateChat,
        invite: [bobId],
    });
    await until("bob sees the invite", () => bob.getRoom(roomId)?.getMyMembership() === sdk.KnownMembership.Invite);
    // The invite carries stripped state: the room's name is known before joining.
    await until("bob sees the invited room's name", () => bob.getRoom(roomId)?.name === "Compat room");

    step("join");
    await bob.joinRoom(roomId);
    await until("bob joined (own sync)", () => bob.getRoom(roomId)?.getMyMembership() === sdk.KnownMembership.Join);
    await until("alice sees bob join", () => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join");

    step("name + topic");
    await alice.setRoomName(roomId, "Renamed");
    await alice.setRoomTopic(roomId, "The topic");
    await until("bob sees the new name", () => bob.getRoom(roomId)?.name === "Renamed");
    await until("bob sees the topic", () =>
        bob.getRoom(roomId)?.currentState.getStateEvents("m.room.topic", "")?.getContent().topic === "The topic",
    );

    step("text");
    const { event_id: helloId } = await alice.sendTextMessage(roomId, "hello bob");
    const helloAtBob = await until("bob gets the text", () => findEvent(bob, roomId, helloId));
    check(helloAtBob.getContent().body === "hello bob", "text body");
    check(helloAtBob.getSender() === aliceId, "text sender");

    step("reply");
    const { event_id: replyId } = await bob.sendMessage(roomId, {
        msgtype: "m.text",
        body: "> <alice> hello bob\n\nhi alice",
        "m.relates_to": { "m.in_reply_to": { event_id: helloId } },
    });
    const replyAtAlice = await until("alice gets the reply", () => findEvent(alice, roomId, replyId));
    check(replyAtAlice.replyEventId === helloId, "reply points at the text");

    step("edit");
    await alice.sendMessage(roomId, {
        msgtype: "m.text",
        body: "* hello bob, edited",
        "m.new_content": { msgtype: "m.text", body: "hello bob, edited" },
        "m.relates_to": { rel_type: "m.replace", event_id: helloId },
    });
    await until("bob shows the edit", () => findEvent(bob, roomId, helloId)?.getContent().body === "hello bob, edited");

    step("reaction");
    const { event_id: reactionId } = await bob.sendEvent(roomId, "m.reaction", {
        "m.relates_to": { rel_type: "m.annotation", event_id: helloId, key: "👍" },
    });
    await until("alice sees the reaction", () => {
        const rels = alice
            .getRoom(roomId)
            ?.getUnfilteredTimelineSet()
            .relations.getChildEventsForEvent(helloId, "m.annotation", "m.reaction");
        return rels?.getSortedAnnotationsByKey()?.some(([key, events]) => key === "👍" && events.size === 1);
    });
    const serverRels = await alice.relations(roomId, helloId, "m.annotation", "m.reaction");
    check(serverRels.events.some((e) => e.getId() === reactionId), "/relations returns the reaction");

    step("redaction");
    const { event_id: doomedId } = await alice.sendTextMessage(roomId, "oops, wrong room");
    await until("bob gets the doomed message", () => findEvent(bob, roomId, doomedId));
    await alice.redactEvent(roomId, doomedId, undefined, { reason: "typo" });
    await until("bob sees it redacted", () => findEvent(bob, roomId, doomedId)?.isRedacted());
    check(!findEvent(bob, roomId, doomedId).getContent().body, "redacted content is gone");

    step("thread");
    const { event_id: rootId } = await alice.sendTextMessage(roomId, "thread root");
    await until("bob gets the thread root", () => findEvent(bob, roomId, rootId));
    const { event_id: threadReplyId } = await bob.sendMessage(roomId, rootId, {
        msgtype: "m.text",
        body: "in the thread",
    });
    await until("alice sees the thread", () => {
        const thread = alice.getRoom(roomId)?.getThread(rootId);
        return thread && thread.events.some((e) => e.getId() === threadReplyId);
    });
    const threads = await alice.http.authedRequest(sdk.Method.Get, `/rooms/${encodeURIComponent(roomId)}/threads`, undefined, undefined, {
        prefix: "/_matrix/client/v1",
    });
    check(threads.chunk.some((e) => e.event_id === rootId), "/threads lists the root");
    const root = threads.chunk.find((e) => e.event_id === rootId);
    check(root.unsigned?.["m.relations"]?.["m.thread"]?.count === 1, "thread summary count 1");

    step("read receipt");
    const lastAtBob = await until("bob has alice's latest", () => findEvent(bob, roomId, rootId));
    await bob.sendReadReceipt(lastAtBob);
    await until("alice sees bob's receipt", () => {
        const room = alice.getRoom(roomId);
        return room && room.getUsersReadUpTo(room.findEventById(rootId)).includes(bobId);
    });

    step("typing");
    const typingSeen = until("alice sees bob typing", () => alice.getRoom(roomId)?.getMember(bobId)?.typing === true);
    await bob.sendTyping(roomId, true, 10000);
    await typingSeen;
    await bob.sendTyping(roomId, false, 0);
    await until("alice sees bob stop typing", () => alice.getRoom(roomId)?.getMember(bobId)?.typing === false);

    step("history");
    const sent = [];
    for (let i = 0; i < 30; i++) {
        sent.push((await alice.sendTextMessage(roomId, `msg ${i}`)).event_id);
    }
    await until("bob gets all 30", () => sent.every((id) => findEvent(bob, roomId, id)));

    step("scrollback from a fresh client");
    const bob2 = await login(bobName, { initialSyncLimit: 5 });
    const room2 = await until("bob2 has the room", () => bob2.getRoom(roomId));
    check(room2.getLiveTimeline().getEvents().length <= 10, "initial sync limited");
    for (let i = 0; i < 20 && room2.oldState.paginationToken !== null; i++) {
        await bob2.scrollback(room2, 20);
        if (liveEvents(bob2, roomId).some((e) => e.getType() === "m.room.create")) break;
    }
    const events = liveEvents(bob2, roomId);
    check(events[0]?.getType() === "m.room.create", `scrollback reaches m.room.create, first is ${events[0]?.getType()}`);
    const ids = events.map((e) => e.getId());
    check(new Set(ids).size === ids.length, "no duplicate events after scrollback");
    const positions = sent.map((id) => ids.indexOf(id));
    check(positions.every((p, i) => p >= 0 && (i === 0 || p > positions[i - 1])), "30 messages in order after scrollback");
    check(ids.includes(helloId) && ids.includes(replyId), "older messages paginated in");
    // Lazy loading: the member list is complete on demand.
    await room2.loadMembersIfNeeded();
    check(room2.getMember(aliceId)?.membership === "join", "lazy-loaded alice's membership");
    check(room2.getJoinedMemberCount() === 2, `joined count ${room2.getJoinedMemberCount()}`);
    check(room2.name === "Renamed", `room name at bob2: ${room2.name}`);
    bob2.stopClient();

    step("profile, tags, account data, directory, media, push rules");
    await bob.setDisplayName("Bob B");
    await until("alice sees bob's new name", () => alice.getRoom(roomId)?.getMember(bobId)?.name === "Bob B");
    check((await alice.getProfileInfo(bobId)).displayname === "Bob B", "profile lookup");
    await bob.setRoomTag(roomId, "m.favourite", { order: 0.5 });
    await until("bob's tag in his sync", () => bob.getRoom(roomId)?.tags?.["m.favourite"]?.order === 0.5);
    await alice.setAccountData("m.direct", { [bobId]: [roomId] });
    await until("alice's account data in her sync", () => alice.getAccountData("m.direct")?.getContent()?.[bobId]?.[0] === roomId);
    const alias = `#compat${suffix}:${aliceId.split(":").slice(1).join(":")}`;
    await alice.createAlias(alias, roomId);
    check((await bob.getRoomIdForAlias(alias)).room_id === roomId, "alias resolves");
    await alice.setRoomDirectoryVisibility(roomId, sdk.Visibility.Public);
    check((await bob.publicRooms({ limit: 50 })).chunk.some((r) => r.room_id === roomId), "room in the public directory");
    const found = await alice.searchUserDirectory({ term: bobName });
    check(found.results.some((u) => u.user_id === bobId), "user directory finds bob");
    const members = await bob.getJoinedRoomMembers(roomId);
    check(Object.keys(members.joined).length === 2, "joined_members");
    const upload = await alice.uploadContent(Buffer.from("hello media"), { name: "hello.txt", type: "text/plain" });
    check(upload.content_uri.startsWith("mxc://"), "upload gives an mxc uri");
    const url = bob.mxcUrlToHttp(upload.content_uri, undefined, undefined, undefined, false, true, true);
    const media = await fetchFn(url, { headers: { Authorization: `Bearer ${bob.getAccessToken()}` } });
    check(media.status === 200 && (await media.text()) === "hello media", `authenticated media download ${media.status}`);
    const rules = await alice.getPushRules();
    check(rules.global.override.some((r) => r.rule_id === ".m.rule.master"), "default push rules");
    await alice.setPushRuleEnabled("global", sdk.PushRuleKind.Override, ".m.rule.suppress_notices", false);
    await alice.setPowerLevel(roomId, bobId, 50);
    await until("bob sees his power level", () => bob.getRoom(roomId)?.getMember(bobId)?.powerLevel === 50);

    step("leave");
    await bob.leave(roomId);
    await until("alice sees bob leave", () => alice.getRoom(roomId)?.getMember(bobId)?.membership === "leave");
    await until("bob's own sync moves the room to left", () => bob.getRoom(roomId)?.getMyMembership() === "leave");

    step("logout");
    alice.stopClient();
    bob.stopClient();
    await alice.logout(true);
    check(serverErrors.length === 0, `server errors: ${serverErrors.join("; ")}`);
    // Only the optional MatrixRTC transports probe may be unknown to the server.
    const unexpected = clientErrors.filter((e) => !e.includes("/org.matrix.msc4143/rtc/transports"));
    check(unexpected.length === 0, `unexpected 4xx: ${unexpected.join("; ")}`);
    if (process.env.VERBOSE) say("4xx seen:", clientErrors.join("; "));
    say("OK " + steps.join(", "));
}

main().then(
    () => process.exit(0),
    (err) => {
        say(`FAILED at step "${current}": ${err && err.stack ? err.stack : err}`);
        process.exit(1);
    },
);

// The composer, in two browsers on a real homeserver (WSPR, or Synapse with E2E_HOMESERVER=synapse):
// @-mention completion producing pills and m.mentions (checked on the wire in an unencrypted room),
// @room, :emoji: completion, the emoji picker (composer and reactions, with search), the formatting
// toolbar and its shortcuts, Up to edit the last message, drafts per room (room switch and reload),
// files pasted and dropped (previewed, then sent encrypted in an encrypted room).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ART, accessToken, api, newPage, registerInApp, startEnvironment } from "./browser.mjs";

const run = Date.now().toString(36).slice(-5);
let env, alice, bob, aliceToken, bobToken, lobby, secret;

const shot = (page, name) => page.screenshot({ path: join(ART, `${env.kind}-composer-${name}.png`) });
const input = (page) => page.getByTestId("composer-input");
const body = (page, text) => page.locator("[data-testid=message-body]", { hasText: text });
const message = (page, text) => page.locator("[data-testid=message]", { has: page.locator("[data-testid=message-body]", { hasText: text }) });

async function openRoom(page, roomId) {
  await page.locator(`[data-testid=room-row][data-room-id="${roomId}"] .room-row-main`).click();
  await page.locator(`[data-testid=room-view][data-room-id="${roomId}"]`).waitFor();
  await input(page).waitFor();
}

/** The newest m.room.message of a room, as the server has it. */
async function lastMessageOnServer(token, roomId) {
  const { chunk } = await api(env, token, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=10`);
  return chunk.find((e) => e.type === "m.room.message" || e.type === "m.room.encrypted");
}

before(async () => {
  env = await startEnvironment({ name: "composer" });
  alice = await newPage(env, "alice", { colorScheme: "light" });
  bob = await newPage(env, "bob", { colorScheme: "dark" });
  await Promise.all([registerInApp(env, alice, `alice${run}`), registerInApp(env, bob, `bob${run}`)]);
  [aliceToken, bobToken] = await Promise.all([accessToken(alice), accessToken(bob)]);
  const bobId = `@bob${run}:localhost`;
  await api(env, aliceToken, "PUT", `/_matrix/client/v3/profile/${encodeURIComponent(`@alice${run}:localhost`)}/displayname`, { displayname: "Alice Archer" });
  await api(env, bobToken, "PUT", `/_matrix/client/v3/profile/${encodeURIComponent(bobId)}/displayname`, { displayname: "Bob Builder" });
  // an unencrypted room (to read what was sent on the wire) and an encrypted one
  lobby = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", { name: "Lobby", preset: "private_chat", invite: [bobId] })).room_id;
  secret = (await api(env, aliceToken, "POST", "/_matrix/client/v3/createRoom", {
    name: "Secret plans",
    preset: "private_chat",
    invite: [bobId],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  })).room_id;
  for (const r of [lobby, secret]) await api(env, bobToken, "POST", `/_matrix/client/v3/join/${encodeURIComponent(r)}`, {});
  for (const p of [alice, bob]) await p.locator(`[data-testid=room-row][data-room-id="${secret}"]`).waitFor({ timeout: 30000 });
});

after(async () => {
  await env?.stop();
});

test("@-mention completion makes a pill and m.mentions; @room for who may use it", async () => {
  await openRoom(alice, lobby);
  await openRoom(bob, lobby);
  await input(alice).pressSequentially("Hi @bu");
  const suggestion = alice.getByTestId("suggestion").first();
  await suggestion.waitFor();
  assert.match(await suggestion.textContent(), /Bob Builder/);
  await shot(alice, "01-mention-suggestions-desktop-light");
  await input(alice).press("Enter");
  assert.equal(await input(alice).inputValue(), "Hi @Bob Builder ");
  await input(alice).pressSequentially("how is the shed?");
  await input(alice).press("Enter");
  // bob sees a pill for himself, and the message is highlighted as a mention (push rules)
  const pill = message(bob, "how is the shed?").locator("a.pill.pill-me");
  await pill.waitFor({ timeout: 30000 });
  assert.equal(await pill.textContent(), "Bob Builder");
  await message(bob, "how is the shed?").and(bob.locator(".msg.highlight")).waitFor();
  const ev = await lastMessageOnServer(aliceToken, lobby);
  assert.equal(ev.content.body, "Hi Bob Builder how is the shed?");
  assert.equal(ev.content.format, "org.matrix.custom.html");
  assert.match(ev.content.formatted_body, new RegExp(`<a href="https://matrix.to/#/@bob${run}:localhost">Bob Builder</a>`));
  assert.deepEqual(ev.content["m.mentions"], { user_ids: [`@bob${run}:localhost`] });

  // @room: alice created the room, so she may notify everyone
  await input(alice).pressSequentially("@ro");
  await alice.getByTestId("suggestion").filter({ hasText: "@room" }).waitFor();
  await input(alice).press("Tab");
  await input(alice).pressSequentially("meeting at five");
  await input(alice).press("Enter");
  await body(bob, "meeting at five").waitFor({ timeout: 30000 });
  assert.deepEqual((await lastMessageOnServer(aliceToken, lobby)).content["m.mentions"], { room: true });
  // a message without mentions says so too
  await input(bob).fill("sounds good");
  await input(bob).press("Enter");
  await body(alice, "sounds good").waitFor({ timeout: 30000 });
  assert.deepEqual((await lastMessageOnServer(aliceToken, lobby)).content["m.mentions"], {});
  await shot(bob, "02-mention-pill-desktop-dark");
});

test(":emoji: completion and the emoji picker (search), for messages and reactions", async () => {
  await input(alice).pressSequentially("Party :tad");
  const tada = alice.getByTestId("suggestion").filter({ hasText: ":tada:" });
  await tada.waitFor({ timeout: 30000 }); // the emoji data loads on first use
  await input(alice).press("Enter");
  assert.equal(await input(alice).inputValue(), "Party 🎉 ");
  // the picker: search, pick
  await alice.getByTestId("emoji-button").click();
  await alice.getByTestId("emoji-picker").waitFor();
  await alice.getByText("Smileys & emotion").waitFor();
  await shot(alice, "03-emoji-picker-desktop-light");
  await alice.getByTestId("emoji-search").fill("rocket");
  await alice.getByTestId("emoji-results").getByRole("button", { name: "rocket" }).click();
  await alice.getByTestId("emoji-picker").waitFor({ state: "detached" });
  assert.equal(await input(alice).inputValue(), "Party 🎉 🚀");
  await input(alice).press("Enter");
  await body(bob, "Party 🎉 🚀").waitFor({ timeout: 30000 });
  // any emoji as a reaction, from the picker's search
  const m = message(bob, "Party 🎉 🚀");
  await m.hover();
  await m.getByRole("button", { name: "React" }).click();
  await bob.getByTestId("more-reactions").click();
  await bob.getByTestId("emoji-search").fill("heart eyes");
  await shot(bob, "04-reaction-picker-search-desktop-dark");
  await bob.getByTestId("emoji-results").locator("button").first().click();
  await message(alice, "Party 🎉 🚀").locator(".reaction", { hasText: "😍" }).waitFor({ timeout: 30000 });
  // the recently used row remembers it
  await bob.getByTestId("emoji-button").click();
  await bob.getByText("Recently used").waitFor();
  await bob.keyboard.press("Escape");
  await bob.getByTestId("emoji-picker").waitFor({ state: "detached" });
});

test("formatting toolbar and shortcuts write Markdown that is sent as HTML", async () => {
  await alice.getByTestId("format-toolbar").waitFor(); // shown by default on a wide screen
  await input(alice).fill("very important");
  await input(alice).press("ControlOrMeta+a");
  await alice.getByRole("button", { name: "Bold" }).click();
  assert.equal(await input(alice).inputValue(), "**very important**");
  await input(alice).press("End");
  await input(alice).pressSequentially(" and ");
  await input(alice).press("ControlOrMeta+i");
  await input(alice).pressSequentially("subtle");
  assert.equal(await input(alice).inputValue(), "**very important** and *subtle*");
  await input(alice).press("Enter");
  await message(bob, "very important").locator("strong", { hasText: "very important" }).waitFor({ timeout: 30000 });
  await message(bob, "very important").locator("em", { hasText: "subtle" }).waitFor();

  await input(alice).fill("milk");
  await input(alice).press("Shift+Enter");
  await input(alice).pressSequentially("eggs");
  await input(alice).press("ControlOrMeta+a");
  await alice.getByRole("button", { name: "Bulleted list" }).click();
  assert.equal(await input(alice).inputValue(), "- milk\n- eggs");
  await input(alice).press("Enter");
  await message(bob, "milk").locator("ul li", { hasText: "eggs" }).waitFor({ timeout: 30000 });

  await input(alice).fill("the docs");
  await input(alice).press("ControlOrMeta+a");
  await alice.getByRole("button", { name: "Link" }).click();
  await input(alice).pressSequentially("https://example.org/docs"); // replaces the selected https://
  assert.equal(await input(alice).inputValue(), "[the docs](https://example.org/docs)");
  await input(alice).press("Enter");
  await message(bob, "the docs").locator("a").waitFor({ timeout: 30000 });
  assert.equal(await message(bob, "the docs").locator("a").getAttribute("href"), "https://example.org/docs");
  await input(alice).fill("wise words");
  await input(alice).press("ControlOrMeta+a");
  await alice.getByRole("button", { name: "Quote" }).click();
  await input(alice).press("Enter");
  await message(bob, "wise words").locator("blockquote").waitFor({ timeout: 30000 });
  await shot(bob, "05-formatted-desktop-dark");
});

test("Up in an empty composer edits my last message", async () => {
  await input(alice).fill("I will bring cake");
  await input(alice).press("Enter");
  await body(bob, "I will bring cake").waitFor({ timeout: 30000 });
  await input(alice).press("ArrowUp");
  await alice.locator(".composer-context", { hasText: "Editing" }).waitFor();
  assert.equal(await input(alice).inputValue(), "I will bring cake");
  await input(alice).fill("I will bring pie");
  await input(alice).press("Enter");
  await message(bob, "I will bring pie").locator(".edited").waitFor({ timeout: 30000 });
  assert.equal(await body(bob, "I will bring cake").count(), 0);
  // Escape cancels an edit and leaves the composer as it was
  await input(alice).press("ArrowUp");
  await alice.locator(".composer-context", { hasText: "Editing" }).waitFor();
  await input(alice).press("Escape");
  await alice.locator(".composer-context").waitFor({ state: "detached" });
  assert.equal(await input(alice).inputValue(), "");
});

test("drafts are kept per room, across room switches and reloads", async () => {
  await input(alice).fill("half-written thought for the lobby");
  await openRoom(alice, secret);
  assert.equal(await input(alice).inputValue(), "");
  await input(alice).fill("secret draft");
  await openRoom(alice, lobby);
  assert.equal(await input(alice).inputValue(), "half-written thought for the lobby");
  await alice.reload();
  await input(alice).waitFor({ timeout: 60000 });
  assert.equal(await input(alice).inputValue(), "half-written thought for the lobby");
  await openRoom(alice, secret);
  assert.equal(await input(alice).inputValue(), "secret draft");
  await input(alice).fill("");
});

/** Dispatches a paste or drop carrying files, as the browser does for a real one. */
async function dispatchFiles(page, selector, type, files) {
  await page.evaluate(
    ({ selector, type, files }) => {
      const dt = new DataTransfer();
      for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
      const target = document.querySelector(selector);
      if (type === "paste") {
        target.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
      } else {
        for (const t of ["dragenter", "dragover"]) target.dispatchEvent(new DragEvent(t, { dataTransfer: dt, bubbles: true, cancelable: true }));
        if (type === "drop") target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    { selector, type, files },
  );
}

test("files pasted or dropped are previewed, then sent encrypted", async () => {
  await openRoom(alice, secret);
  await openRoom(bob, secret);
  const png = await alice.screenshot({ clip: { x: 0, y: 0, width: 320, height: 200 } });
  await dispatchFiles(alice, "[data-testid=composer-input]", "paste", [{ name: "pasted.png", type: "image/png", b64: png.toString("base64") }]);
  await alice.locator("[data-testid=attachment] img").waitFor();
  await alice.locator("[data-testid=attachment-tray]", { hasText: "Encrypted before upload" }).waitFor();
  // and a file dragged over the room: the drop zone shows, the file joins the tray
  await dispatchFiles(alice, "[data-testid=room-view]", "dragover", [{ name: "plan.txt", type: "text/plain", b64: Buffer.from("step 1\n").toString("base64") }]);
  await alice.getByTestId("drop-overlay").waitFor();
  await shot(alice, "06-drop-zone-desktop-light");
  await dispatchFiles(alice, "[data-testid=room-view]", "drop", [{ name: "plan.txt", type: "text/plain", b64: Buffer.from("step 1\n").toString("base64") }]);
  await alice.getByTestId("drop-overlay").waitFor({ state: "detached" });
  assert.equal(await alice.getByTestId("attachment").count(), 2);
  await input(alice).fill("here are the plans");
  await shot(alice, "07-attachments-preview-desktop-light");
  // removing one, then sending: the files, then the text
  await alice.getByRole("button", { name: "Remove plan.txt" }).click();
  assert.equal(await alice.getByTestId("attachment").count(), 1);
  await dispatchFiles(alice, "[data-testid=room-view]", "drop", [{ name: "plan.txt", type: "text/plain", b64: Buffer.from("step 1\n").toString("base64") }]);
  await alice.getByTestId("send").click();
  await alice.getByTestId("attachment-tray").waitFor({ state: "detached", timeout: 60000 });
  const img = bob.locator("[data-testid=image] img");
  await img.waitFor({ timeout: 30000 });
  await bob.waitForFunction((el) => el.complete && el.naturalWidth === 320, await img.elementHandle());
  await bob.locator(".file-card", { hasText: "plan.txt" }).waitFor();
  await body(bob, "here are the plans").waitFor();
  const { chunk } = await api(env, aliceToken, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(secret)}/messages?dir=b&limit=10`);
  assert.ok(!chunk.some((e) => e.type === "m.room.message"), "only ciphertext on the server");
  assert.ok(chunk.filter((e) => e.type === "m.room.encrypted").length >= 3);
});

test("phone layouts in both themes", async () => {
  await openRoom(alice, lobby);
  await openRoom(bob, lobby);
  for (const [page, theme] of [[alice, "light"], [bob, "dark"]]) {
    await page.setViewportSize({ width: 390, height: 844 });
    await input(page).fill("");
    await input(page).pressSequentially("@a");
    await page.getByTestId("suggestion").first().waitFor();
    await shot(page, `08-mention-suggestions-phone-${theme}`);
    await input(page).fill("");
    await page.getByTestId("emoji-button").click();
    await page.locator(".emoji-picker.sheet").waitFor();
    await page.getByText("Smileys & emotion").waitFor();
    await shot(page, `09-emoji-sheet-phone-${theme}`);
    await page.keyboard.press("Escape");
    if (!(await page.getByTestId("format-toolbar").count())) await page.getByTestId("toggle-formatting").click();
    await page.getByTestId("format-toolbar").waitFor();
    await input(page).fill("**bold** plan");
    await shot(page, `10-format-toolbar-phone-${theme}`);
    await input(page).fill("");
    await page.setViewportSize({ width: 1280, height: 800 });
  }
});

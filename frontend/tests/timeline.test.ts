import { describe, expect, it } from "vitest";
import { MatrixEvent } from "matrix-js-sdk";
import { buildTimeline, continues, describeStateEvent, plainTextOf, stripReplyFallback } from "../src/lib/timeline";
import { sortRooms, initialOf, formatTime, dayLabel } from "../src/lib/rooms";

let n = 0;
function ev(type: string, sender: string, content: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  n++;
  return new MatrixEvent({ type, sender, content, event_id: `$e${n}`, origin_server_ts: 1000 * n, room_id: "!r", ...extra });
}

describe("buildTimeline", () => {
  it("applies the latest edit and hides the edit events", () => {
    const orig = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "helo" });
    const edit1 = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "* hell", "m.new_content": { msgtype: "m.text", body: "hell" }, "m.relates_to": { rel_type: "m.replace", event_id: orig.getId() } });
    const edit2 = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "* hello", "m.new_content": { msgtype: "m.text", body: "hello" }, "m.relates_to": { rel_type: "m.replace", event_id: orig.getId() } });
    const items = buildTimeline([orig, edit1, edit2], "@a:hs");
    expect(items).toHaveLength(1);
    expect(items[0].content.body).toBe("hello");
    expect(items[0].edited).toBe(true);
  });
  it("aggregates reactions and remembers our own", () => {
    const msg = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "hi" });
    const r1 = ev("m.reaction", "@a:hs", { "m.relates_to": { rel_type: "m.annotation", event_id: msg.getId(), key: "👍" } });
    const r2 = ev("m.reaction", "@b:hs", { "m.relates_to": { rel_type: "m.annotation", event_id: msg.getId(), key: "👍" } });
    const r3 = ev("m.reaction", "@b:hs", { "m.relates_to": { rel_type: "m.annotation", event_id: msg.getId(), key: "🎉" } });
    const [item] = buildTimeline([msg, r1, r2, r3], "@a:hs");
    expect(item.reactions).toEqual([
      { key: "👍", senders: ["@a:hs", "@b:hs"], mine: r1.getId() },
      { key: "🎉", senders: ["@b:hs"] },
    ]);
  });
  it("links replies", () => {
    const msg = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "q" });
    const reply = ev("m.room.message", "@b:hs", { msgtype: "m.text", body: "a", "m.relates_to": { "m.in_reply_to": { event_id: msg.getId() } } });
    const items = buildTimeline([msg, reply], "@a:hs");
    expect(items[1].replyTo).toBe(msg.getId());
  });
  it("shows redacted messages as deleted", () => {
    const msg = ev("m.room.message", "@a:hs", {}, { unsigned: { redacted_because: { type: "m.room.redaction", sender: "@a:hs", content: {} } } });
    const [item] = buildTimeline([msg], "@a:hs");
    expect(item.redacted).toBe(true);
    expect(plainTextOf(item)).toBe("Message deleted");
  });
  it("honours v11 redactions that only carry content.redacts", () => {
    const msg = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "secret" });
    const react = ev("m.reaction", "@b:hs", { "m.relates_to": { rel_type: "m.annotation", event_id: msg.getId(), key: "👍" } });
    const red1 = ev("m.room.redaction", "@b:hs", { redacts: react.getId() });
    const red2 = ev("m.room.redaction", "@a:hs", { redacts: msg.getId() });
    const items = buildTimeline([msg, react, red1], "@a:hs");
    expect(items[0].reactions).toEqual([]);
    const after = buildTimeline([msg, react, red1, red2], "@a:hs");
    expect(after).toHaveLength(1);
    expect(after[0].redacted).toBe(true);
    expect(plainTextOf(after[0])).toBe("Message deleted");
  });
  it("marks undecrypted events", () => {
    const enc = ev("m.room.encrypted", "@a:hs", { algorithm: "m.megolm.v1.aes-sha2", ciphertext: "xx" });
    const [item] = buildTimeline([enc], "@a:hs");
    expect(item.decryptionFailure).toBeNull();
    expect(plainTextOf(item)).toBe("Encrypted message");
  });
  it("groups consecutive messages from the same sender", () => {
    const a = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "1" });
    const b = ev("m.room.message", "@a:hs", { msgtype: "m.text", body: "2" });
    const c = ev("m.room.message", "@b:hs", { msgtype: "m.text", body: "3" });
    const items = buildTimeline([a, b, c], "@a:hs");
    expect(continues(items[0], items[1])).toBe(true);
    expect(continues(items[1], items[2])).toBe(false);
  });
  it("previews media", () => {
    const img = ev("m.room.message", "@a:hs", { msgtype: "m.image", body: "x.png" });
    expect(plainTextOf(buildTimeline([img], "@a:hs")[0])).toBe("📷 Image");
  });
});

describe("describeStateEvent", () => {
  const name = (u: string) => u.slice(1, 2).toUpperCase();
  it("describes membership and settings", () => {
    expect(describeStateEvent(ev("m.room.member", "@a:hs", { membership: "invite" }, { state_key: "@b:hs" }), name)).toBe("A invited B");
    expect(describeStateEvent(ev("m.room.member", "@b:hs", { membership: "join" }, { state_key: "@b:hs" }), name)).toBe("B joined");
    expect(describeStateEvent(ev("m.room.encryption", "@a:hs", { algorithm: "m.megolm.v1.aes-sha2" }, { state_key: "" }), name)).toBe("A turned on end-to-end encryption");
    expect(describeStateEvent(ev("m.room.power_levels", "@a:hs", {}, { state_key: "" }), name)).toBeNull();
  });
});

describe("room list helpers", () => {
  it("sorts invites first, then by activity", () => {
    const sorted = sortRooms([
      { name: "old", membership: "join", lastActivity: 1 },
      { name: "new", membership: "join", lastActivity: 5 },
      { name: "invite", membership: "invite", lastActivity: 0 },
    ]);
    expect(sorted.map((r) => r.name)).toEqual(["invite", "new", "old"]);
  });
  it("initials and times", () => {
    expect(initialOf("@bob:hs")).toBe("B");
    expect(initialOf("")).toBe("?");
    const now = new Date(2026, 0, 10, 12, 0).getTime();
    expect(formatTime(now - 60_000, now)).toMatch(/\d/);
  });
});

describe("dayLabel", () => {
  it("says Today, Yesterday, then dates", () => {
    const now = new Date(2026, 5, 10, 9, 0).getTime();
    expect(dayLabel(new Date(2026, 5, 10, 0, 5).getTime(), now)).toBe("Today");
    expect(dayLabel(new Date(2026, 5, 9, 23, 55).getTime(), now)).toBe("Yesterday");
    expect(dayLabel(new Date(2026, 5, 1).getTime(), now)).toMatch(/1/);
  });
});

import { formatBytes } from "../src/components/Message";
describe("formatBytes", () => {
  it("reads well", () => {
    expect(formatBytes(16)).toBe("16 bytes");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MB");
  });
});

describe("stripReplyFallback", () => {
  it("drops the quote older clients put in a reply (body and formatted_body)", () => {
    const stripped = stripReplyFallback({
      msgtype: "m.text",
      body: "> <@alice:hs> Where are we meeting?\n> Tomorrow?\n\nAt the station",
      format: "org.matrix.custom.html",
      formatted_body: '<mx-reply><blockquote><a href="https://matrix.to/#/!r/$e">In reply to</a> <a href="https://matrix.to/#/@alice:hs">@alice:hs</a><br>Where are we meeting?</blockquote></mx-reply>At the <b>station</b>',
    });
    expect(stripped.body).toBe("At the station");
    expect(stripped.formatted_body).toBe("At the <b>station</b>");
  });
  it("leaves a reply without a quote, and a message that only quotes, as they are", () => {
    expect(stripReplyFallback({ body: "At the station" }).body).toBe("At the station");
    expect(stripReplyFallback({ body: "> only a quote" }).body).toBe("> only a quote");
  });
});

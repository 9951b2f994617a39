import { describe, expect, it } from "vitest";
import { MatrixEvent } from "matrix-js-sdk";
import { bundledThread, threadRelation, threadReplyTarget, threadRootOf } from "../src/components/threads/relation";
import { threadInfo } from "../src/components/threads/threadInfo";

function ev(id: string, ts: number, content: Record<string, unknown>, unsigned: Record<string, unknown> = {}, sender = "@a:x") {
  return new MatrixEvent({ event_id: id, type: "m.room.message", room_id: "!r:x", sender, origin_server_ts: ts, content: { msgtype: "m.text", body: id, ...content }, unsigned });
}

describe("thread relations", () => {
  it("a reply in a thread falls back to the latest event, or names the message it answers", () => {
    expect(threadRelation({ rootId: "$root", latestId: "$last" })).toEqual({ rel_type: "m.thread", event_id: "$root", is_falling_back: true, "m.in_reply_to": { event_id: "$last" } });
    expect(threadRelation({ rootId: "$root", latestId: "$last", replyTo: "$mid" })).toEqual({ rel_type: "m.thread", event_id: "$root", is_falling_back: false, "m.in_reply_to": { event_id: "$mid" } });
  });
  it("reads the root and the real reply target, not the fallback", () => {
    const fallback = ev("$1", 1, { "m.relates_to": threadRelation({ rootId: "$root", latestId: "$0" }) });
    const real = ev("$2", 2, { "m.relates_to": threadRelation({ rootId: "$root", latestId: "$1", replyTo: "$0" }) });
    expect(threadRootOf(fallback)).toBe("$root");
    expect(threadReplyTarget(fallback)).toBeUndefined();
    expect(threadReplyTarget(real)).toBe("$0");
    expect(threadRootOf(ev("$3", 3, { "m.relates_to": { "m.in_reply_to": { event_id: "$0" } } }))).toBeUndefined();
  });
});

describe("thread summaries", () => {
  const bundle = { "m.relations": { "m.thread": { count: 5, latest_event: { event_id: "$5", sender: "@b:x", origin_server_ts: 50 }, current_user_participated: true } } };
  it("takes the server's count and adds replies that came after it", () => {
    const root = ev("$root", 1, {}, bundle);
    expect(bundledThread(root)).toEqual({ count: 5, latest: { event_id: "$5", sender: "@b:x", origin_server_ts: 50 }, participated: true });
    const later = ev("$6", 60, { "m.relates_to": threadRelation({ rootId: "$root", latestId: "$5" }) }, {}, "@c:x");
    const same = ev("$5", 50, { "m.relates_to": threadRelation({ rootId: "$root", latestId: "$4" }) }, {}, "@b:x");
    const info = threadInfo(root, [same, later])!;
    expect(info.count).toBe(6);
    expect(info.latestSender).toBe("@c:x");
    expect(info.latestTs).toBe(60);
    expect(info.participants).toEqual(["@b:x", "@c:x"]);
  });
  it("counts loaded replies where the server bundled nothing, and nothing for plain messages", () => {
    const root = ev("$root", 1, {});
    const r1 = ev("$r1", 2, { "m.relates_to": threadRelation({ rootId: "$root", latestId: "$root" }) });
    expect(threadInfo(root, [r1])?.count).toBe(1);
    expect(threadInfo(root, [])).toBeUndefined();
  });
});

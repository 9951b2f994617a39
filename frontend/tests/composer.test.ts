// @vitest-environment jsdom
import { describe, expect, it, beforeEach } from "vitest";
import { composeMessage, editableText } from "../src/lib/mentions";
import { applyCompletion, findTrigger, rankMembers } from "../src/lib/autocomplete";
import { applyFormat } from "../src/lib/formatting";
import { clearDrafts, loadDraft, saveDraft } from "../src/lib/drafts";
import { prepareReceivedHtml } from "../src/lib/markdown";

describe("mentions", () => {
  it("turns a picked mention into a pill and m.mentions", () => {
    const c = composeMessage("hi @Bob, see this", [{ text: "@Bob", userId: "@bob:hs" }], { canMentionRoom: false });
    expect(c.body).toBe("hi Bob, see this");
    expect(c.format).toBe("org.matrix.custom.html");
    expect(c.formatted_body).toBe('hi <a href="https://matrix.to/#/@bob:hs">Bob</a>, see this');
    expect(c["m.mentions"]).toEqual({ user_ids: ["@bob:hs"] });
  });
  it("forgets a mention whose text was edited away, and never matches inside a longer name", () => {
    const c = composeMessage("hi @Bobby", [{ text: "@Bob", userId: "@bob:hs" }], { canMentionRoom: false });
    expect(c).toEqual({ body: "hi @Bobby", "m.mentions": {} });
  });
  it("names with Markdown characters stay literal; longest first", () => {
    const c = composeMessage("@Bob *the* Builder and @Bob", [
      { text: "@Bob", userId: "@b:hs" },
      { text: "@Bob *the* Builder", userId: "@bb:hs" },
    ], { canMentionRoom: false });
    expect(c.body).toBe("Bob *the* Builder and Bob");
    expect(c.formatted_body).toBe('<a href="https://matrix.to/#/@bb:hs">Bob *the* Builder</a> and <a href="https://matrix.to/#/@b:hs">Bob</a>');
    expect(c["m.mentions"].user_ids?.sort()).toEqual(["@b:hs", "@bb:hs"]);
  });
  it("@room only for who may notify the room; reply senders are mentioned", () => {
    expect(composeMessage("@room lunch", [], { canMentionRoom: true })["m.mentions"]).toEqual({ room: true });
    expect(composeMessage("@room lunch", [], { canMentionRoom: false })["m.mentions"]).toEqual({});
    expect(composeMessage("ok", [], { canMentionRoom: false, alsoMention: ["@a:hs"] })["m.mentions"]).toEqual({ user_ids: ["@a:hs"] });
  });
  it("gives an edit back its pills", () => {
    const c = composeMessage("hey @Bob **now**", [{ text: "@Bob", userId: "@bob:hs" }], { canMentionRoom: false });
    expect(editableText(c as unknown as Record<string, unknown>)).toEqual({ text: "hey @Bob **now**", mentions: [{ text: "@Bob", userId: "@bob:hs" }] });
  });
  it("shows received pills, mine distinctly", () => {
    const html = prepareReceivedHtml('<a href="https://matrix.to/#/@me:hs">Me</a> <a href="https://matrix.to/#/@x:hs">X</a> <a href="https://example.org">site</a>', "@me:hs");
    expect(html).toContain('class="pill pill-me"');
    expect(html).toContain('data-user-id="@x:hs"');
    expect(html).toMatch(/<a href="https:\/\/example.org" target="_blank" rel="noreferrer noopener">site<\/a>/);
  });
});

describe("autocomplete", () => {
  it("finds the @ or : being typed at the caret", () => {
    expect(findTrigger("hi @bo", 6)).toEqual({ kind: "user", query: "bo", start: 3, end: 6 });
    expect(findTrigger("hi @", 4)).toEqual({ kind: "user", query: "", start: 3, end: 4 });
    expect(findTrigger("mail a@b", 8)).toBeNull();
    expect(findTrigger("nice :thu", 9)).toEqual({ kind: "emoji", query: "thu", start: 5, end: 9 });
    expect(findTrigger("at 10:30", 8)).toBeNull();
    expect(findTrigger(":t", 2)).toBeNull();
  });
  it("ranks members by name, then id", () => {
    const ms = [{ userId: "@zed:hs", name: "Bobby" }, { userId: "@bob:hs", name: "Robert" }, { userId: "@al:hs", name: "Alice Bobson" }, { userId: "@c:hs", name: "Carol" }];
    expect(rankMembers(ms, "bob").map((m) => m.userId)).toEqual(["@zed:hs", "@bob:hs", "@al:hs"]);
  });
  it("replaces the trigger with the completion and a space", () => {
    const t = findTrigger("hi @bo", 6)!;
    expect(applyCompletion("hi @bo", t, "@Bob")).toEqual({ text: "hi @Bob ", caret: 8 });
  });
});

describe("formatting", () => {
  it("wraps and unwraps the selection", () => {
    const b = applyFormat({ text: "say hi now", selStart: 4, selEnd: 6 }, "bold");
    expect(b).toEqual({ text: "say **hi** now", selStart: 6, selEnd: 8 });
    expect(applyFormat(b, "bold")).toEqual({ text: "say hi now", selStart: 4, selEnd: 6 });
    expect(applyFormat({ text: "x", selStart: 0, selEnd: 1 }, "italic").text).toBe("*x*");
    expect(applyFormat({ text: "a\nb", selStart: 0, selEnd: 3 }, "code").text).toBe("```\na\nb\n```\n");
  });
  it("links select the address to type", () => {
    const l = applyFormat({ text: "see docs", selStart: 4, selEnd: 8 }, "link");
    expect(l.text).toBe("see [docs](https://)");
    expect(l.text.slice(l.selStart, l.selEnd)).toBe("https://");
  });
  it("prefixes whole lines for quotes and lists, after a blank line", () => {
    expect(applyFormat({ text: "one\ntwo", selStart: 0, selEnd: 7 }, "bullets").text).toBe("- one\n- two");
    expect(applyFormat({ text: "one\ntwo", selStart: 0, selEnd: 7 }, "numbers").text).toBe("1. one\n2. two");
    expect(applyFormat({ text: "intro\nquoted", selStart: 8, selEnd: 8 }, "quote").text).toBe("intro\n\n> quoted");
    expect(applyFormat({ text: "> a\n> b", selStart: 0, selEnd: 7 }, "quote").text).toBe("a\nb");
  });
});

describe("drafts", () => {
  beforeEach(() => localStorage.clear());
  it("are kept per account and room, and cleared at sign-out", () => {
    saveDraft("@a:hs", "!r", { text: "half a thought @Bob", mentions: [{ text: "@Bob", userId: "@bob:hs" }] });
    expect(loadDraft("@a:hs", "!r")?.mentions).toEqual([{ text: "@Bob", userId: "@bob:hs" }]);
    expect(loadDraft("@b:hs", "!r")).toBeNull();
    saveDraft("@a:hs", "!r", { text: "", mentions: [] });
    expect(loadDraft("@a:hs", "!r")).toBeNull();
    saveDraft("@a:hs", "!s", { text: "x", mentions: [] });
    localStorage.setItem("other", "1");
    clearDrafts();
    expect(loadDraft("@a:hs", "!s")).toBeNull();
    expect(localStorage.getItem("other")).toBe("1");
  });
});

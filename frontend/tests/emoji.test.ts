import { describe, expect, it } from "vitest";
import { buildEmojiData, searchEmoji } from "../src/lib/emoji";
import compact from "emojibase-data/en/compact.json";
import iamcal from "emojibase-data/en/shortcodes/iamcal.json";

const data = buildEmojiData(compact, iamcal);

describe("emoji", () => {
  it("groups emoji without skin-tone components and indexes Slack shortcodes", () => {
    expect(data.groups.map((g) => g.name)).toContain("Smileys & emotion");
    expect(data.groups.every((g) => g.emoji.length > 0)).toBe(true);
    expect(data.byShortcode.get("+1")?.label).toBe("thumbs up");
    expect(data.byShortcode.get("joy")?.label).toBe("face with tears of joy");
  });
  it("searches shortcodes first, then names and tags", () => {
    expect(searchEmoji(data, "thumbsup")[0].label).toBe("thumbs up");
    expect(searchEmoji(data, ":tada:")[0].label).toBe("party popper");
    expect(searchEmoji(data, "heart").length).toBeGreaterThan(5);
    expect(searchEmoji(data, "zzzzqqq")).toEqual([]);
    expect(searchEmoji(data, "heart eyes")[0].label).toBe("smiling face with heart-eyes");
  });
});

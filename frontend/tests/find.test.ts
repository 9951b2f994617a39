import { describe, expect, it } from "vitest";
import { matches, tokenize } from "../src/components/search/localIndex";
import { matchScore, rankRooms, type Candidate } from "../src/components/search/RoomSwitcher";
import { typedUserId } from "../src/components/search/UserPicker";

describe("local search index words", () => {
  it("lower-cases, strips accents, splits on anything not a letter or digit, once each", () => {
    expect(tokenize("Café, NAÏVE! café 42nd—street")).toEqual(["cafe", "naive", "42nd", "street"]);
    expect(tokenize("日本語 テキスト")).toEqual(["日本語", "テキスト"]);
    expect(tokenize("   ")).toEqual([]);
  });
  it("matches when every query word starts some word of the message", () => {
    const words = tokenize("Meeting moved to Thursday afternoon");
    expect(matches(words, tokenize("thurs meet"))).toBe(true);
    expect(matches(words, tokenize("thursday evening"))).toBe(false);
    expect(matches(words, tokenize("oving"))).toBe(false); // prefixes, not substrings
  });
});

function room(name: string, lastActivity: number, extra: Partial<Candidate> = {}): Candidate {
  return { roomId: `!${name}:x`, name, membership: "join", lastActivity, unread: 0, highlight: 0, isDirect: false, encrypted: true, aliases: [], ...extra };
}

describe("room switcher", () => {
  it("scores name starts over word starts over anywhere over aliases", () => {
    expect(matchScore(room("Team chat", 0), "team")).toBe(4);
    expect(matchScore(room("The team", 0), "team")).toBe(3);
    expect(matchScore(room("Steamroller", 0), "team")).toBe(2);
    expect(matchScore(room("Bob", 0, { aliases: ["@bob.teams:x"] }), "team")).toBe(1);
    expect(matchScore(room("Bob", 0), "team")).toBe(0);
  });
  it("ranks by score, then unread, then recent activity; empty query lists everything", () => {
    const rooms = [room("Old team", 1), room("Team B", 2), room("Team A", 3), room("Quiet", 9), room("Team C", 1, { unread: 2 })];
    expect(rankRooms(rooms, "team").map((r) => r.name)).toEqual(["Team C", "Team A", "Team B", "Old team"]);
    expect(rankRooms(rooms, "").map((r) => r.name)).toEqual(["Team C", "Quiet", "Team A", "Team B", "Old team"]);
  });
});

describe("user IDs typed in the DM picker", () => {
  it("completes a bare name with our server, refuses what can't be a user ID", () => {
    expect(typedUserId("bob", "home.org")).toBe("@bob:home.org");
    expect(typedUserId("@bob:other.org", "home.org")).toBe("@bob:other.org");
    expect(typedUserId("@bob:localhost:8448", "home.org")).toBe("@bob:localhost:8448");
    expect(typedUserId("Bob Smith", "home.org")).toBeNull();
    expect(typedUserId("", "home.org")).toBeNull();
  });
});

import { describe, expect, it } from "vitest";
import { CREATOR, levelChoices, mayChangeUserLevel, PERMISSIONS, privilegedCreators, roleName, userLevel, withUserLevel, type PowerLevels } from "../src/components/roomsettings/powerLevels";
import { parseRoomTarget, roomLink, viaServers } from "../src/components/roomsettings/inviteLink";
import { sortVersions } from "../src/components/roomsettings/Advanced";

const pl: PowerLevels = { users: { "@admin:a": 100, "@mod:a": 50 }, users_default: 0, state_default: 50, events_default: 0, kick: 50, ban: 50 };

describe("power levels", () => {
  it("reads levels and names roles", () => {
    expect(userLevel(pl, "@admin:a")).toBe(100);
    expect(userLevel(pl, "@someone:b")).toBe(0);
    expect(userLevel({ users: { "@x:a": "9000" as unknown as number } }, "@x:a")).toBe(0); // untrusted content
    expect(roleName(100)).toBe("Admin");
    expect(roleName(50)).toBe("Moderator");
    expect(roleName(0)).toBe("Member");
    expect(roleName(20)).toBe("Custom (20)");
  });
  it("changes one user's level, dropping entries equal to the default", () => {
    expect(withUserLevel(pl, "@bob:a", 50).users).toEqual({ "@admin:a": 100, "@mod:a": 50, "@bob:a": 50 });
    expect(withUserLevel(pl, "@mod:a", 0).users).toEqual({ "@admin:a": 100 });
    expect(pl.users).toEqual({ "@admin:a": 100, "@mod:a": 50 }); // not mutated
  });
  it("follows the auth rules for who may change whose level", () => {
    expect(mayChangeUserLevel(pl, "@admin:a", "@mod:a", 100, true)).toBe(true);
    expect(mayChangeUserLevel(pl, "@mod:a", "@admin:a", 0, true)).toBe(false); // above me
    expect(mayChangeUserLevel(pl, "@mod:a", "@someone:a", 100, true)).toBe(false); // higher than me
    expect(mayChangeUserLevel(pl, "@mod:a", "@someone:a", 50, true)).toBe(true);
    expect(mayChangeUserLevel(pl, "@mod:a", "@mod:a", 0, true)).toBe(true); // lowering myself
    expect(mayChangeUserLevel(pl, "@admin:a", "@mod:a", 0, false)).toBe(false); // can't send power_levels
  });
  it("gives v12 rooms' creators the creator level, which nobody can change", () => {
    const pl: PowerLevels = { users: { "@mod:hs": 50 } };
    const creators = privilegedCreators("12", "@alice:hs", { additional_creators: ["@carol:hs", 5] });
    expect([...creators]).toEqual(["@alice:hs", "@carol:hs"]);
    expect(privilegedCreators("11", "@alice:hs", {}).size).toBe(0);
    expect(privilegedCreators("org.matrix.hydra.11", "@alice:hs", {}).has("@alice:hs")).toBe(true);
    expect(userLevel(pl, "@alice:hs", creators)).toBe(CREATOR);
    expect(userLevel(pl, "@mod:hs", creators)).toBe(50);
    expect(roleName(CREATOR)).toBe("Owner");
    // a creator sets others' levels, up to admin and beyond; nobody sets a creator's
    expect(mayChangeUserLevel(pl, "@alice:hs", "@mod:hs", 100, true, creators)).toBe(true);
    expect(mayChangeUserLevel(pl, "@alice:hs", "@carol:hs", 0, true, creators)).toBe(false);
    expect(mayChangeUserLevel(pl, "@alice:hs", "@alice:hs", 0, true, creators)).toBe(false);
    expect(mayChangeUserLevel({ users: { "@mod:hs": 100 } }, "@mod:hs", "@alice:hs", 0, true, creators)).toBe(false);
  });

  it("reads and writes permissions with the spec's defaults", () => {
    const byId = Object.fromEntries(PERMISSIONS.map((p) => [p.id, p]));
    expect(byId.invite.get({})).toBe(0);
    expect(byId.redact.get({})).toBe(50);
    expect(byId["events.m.room.name"].get({ state_default: 20 })).toBe(20);
    expect(byId["events.m.room.message"].get({ events_default: 10 })).toBe(10);
    expect(byId["notifications.room"].get({})).toBe(50);
    const next = byId["events.m.room.topic"].set(pl, 0);
    expect(next.events).toEqual({ "m.room.topic": 0 });
    expect(byId["notifications.room"].set({ notifications: { room: 50 } }, 0).notifications).toEqual({ room: 0 });
  });
  it("offers the named roles, the current custom level, nothing above mine", () => {
    expect(levelChoices(0, 50).map((c) => [c.level, c.disabled])).toEqual([[0, false], [50, false], [100, true]]);
    expect(levelChoices(20, 100).map((c) => c.label)).toEqual(["Member", "Custom (20)", "Moderator", "Admin"]);
  });
});

describe("invite links", () => {
  it("links by address where there is one", () => {
    expect(roomLink("#team:example.org", "!abc:example.org", [])).toBe("https://matrix.to/#/%23team:example.org");
  });
  it("links by id with via servers: the top-powered member's server, then the most populous", () => {
    const via = viaServers([
      { userId: "@a:big.org", powerLevel: 0 },
      { userId: "@b:big.org", powerLevel: 0 },
      { userId: "@c:small.org", powerLevel: 100 },
      { userId: "@d:mid.org", powerLevel: 0 },
      { userId: "@e:127.0.0.1:8448", powerLevel: 0 },
      { userId: "@f:other.org", powerLevel: 0 },
    ]);
    expect(via).toEqual(["small.org", "big.org", "mid.org"]);
    expect(roomLink(null, "!abc:small.org", via)).toBe("https://matrix.to/#/!abc:small.org?via=small.org&via=big.org&via=mid.org");
  });
  it("reads links, addresses and ids back", () => {
    expect(parseRoomTarget("https://matrix.to/#/%23team:example.org", "x")).toEqual({ target: "#team:example.org", via: [] });
    expect(parseRoomTarget("https://matrix.to/#/!abc:a.org?via=a.org&via=b.org", "x")).toEqual({ target: "!abc:a.org", via: ["a.org", "b.org"] });
    expect(parseRoomTarget("https://matrix.to/#/!abc:a.org/$event?via=a.org", "x")).toEqual({ target: "!abc:a.org", via: ["a.org"] });
    expect(parseRoomTarget("https://matrix.to/#/@bob:a.org", "x")).toBeNull();
    expect(parseRoomTarget("lobby", "home.org")).toEqual({ target: "#lobby:home.org", via: [] });
    expect(parseRoomTarget("  ", "home.org")).toBeNull();
  });
});

describe("room versions", () => {
  it("sorts numerically", () => {
    expect(sortVersions(["10", "2", "org.example.x", "12", "1"])).toEqual(["1", "2", "10", "12", "org.example.x"]);
  });
});

import { describe, expect, it, vi } from "vitest";
import { getRoomNotifState, setRoomNotifState } from "../src/notifications/roomRules";
import { titleFor, unreadTotal } from "../src/notifications/useUnreadBadge";
import type { MatrixClient } from "matrix-js-sdk";

function clientWith(rules: Record<string, unknown[]>) {
  const add = vi.fn(async () => ({}));
  const del = vi.fn(async () => ({}));
  const client = { pushRules: { global: rules }, addPushRule: add, deletePushRule: del } as unknown as MatrixClient;
  return Object.assign(client, { add, del });
}

describe("per-room notification settings (Element's push rules)", () => {
  it("reads mute from an override, mentions-only from a room rule", () => {
    const mute = { rule_id: "!r", enabled: true, default: false, actions: [], conditions: [{ kind: "event_match", key: "room_id", pattern: "!r" }] };
    expect(getRoomNotifState(clientWith({ override: [mute] }), "!r")).toBe("mute");
    expect(getRoomNotifState(clientWith({ override: [{ ...mute, actions: ["dont_notify"] }] }), "!r")).toBe("mute");
    expect(getRoomNotifState(clientWith({ room: [{ rule_id: "!r", enabled: true, default: false, actions: [] }] }), "!r")).toBe("mentions");
    expect(getRoomNotifState(clientWith({ room: [{ rule_id: "!r", enabled: true, default: false, actions: ["notify"] }] }), "!r")).toBe("all");
    expect(getRoomNotifState(clientWith({}), "!r")).toBe("all");
  });
  it("writes the same rules", async () => {
    const c = clientWith({ room: [{ rule_id: "!r", actions: [] }] });
    await setRoomNotifState(c, "!r", "mute");
    expect(c.del).toHaveBeenCalledWith("global", "room", "!r");
    expect(c.add).toHaveBeenCalledWith("global", "override", "!r", { conditions: [{ kind: "event_match", key: "room_id", pattern: "!r" }], actions: [] });
    const m = clientWith({ override: [{ rule_id: "!r", actions: [] }] });
    await setRoomNotifState(m, "!r", "mentions");
    expect(m.del).toHaveBeenCalledWith("global", "override", "!r");
    expect(m.add).toHaveBeenCalledWith("global", "room", "!r", { actions: [] });
    const a = clientWith({ room: [{ rule_id: "!r", actions: [] }] });
    await setRoomNotifState(a, "!r", "all");
    expect(a.del).toHaveBeenCalledWith("global", "room", "!r");
    expect(a.add).not.toHaveBeenCalled();
  });
});

describe("unread badge", () => {
  it("adds notification counts of joined rooms and one per invite", () => {
    const room = (m: string, n: number) => ({ getMyMembership: () => m, getUnreadNotificationCount: () => n });
    const c = { getRooms: () => [room("join", 3), room("invite", 0), room("leave", 5), room("join", 0)] } as unknown as MatrixClient;
    expect(unreadTotal(c)).toBe(4);
    expect(titleFor(4)).toBe("(4) WSPR");
    expect(titleFor(0)).toBe("WSPR");
    expect(titleFor(120)).toBe("(99+) WSPR");
  });
});

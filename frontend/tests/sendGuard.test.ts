import { describe, expect, it } from "vitest";
import { EncryptedRoomRegistry, ensureSafeToSend, NotSafeToSendError, type GuardClient } from "../src/lib/sendGuard";

function client(opts: { room?: { encState: boolean; membership?: string } | null; cryptoEnabled?: () => boolean; crypto?: boolean }): GuardClient {
  return {
    getRoom: () =>
      opts.room
        ? { hasEncryptionStateEvent: () => opts.room!.encState, getMyMembership: () => opts.room!.membership ?? "join" }
        : null,
    getCrypto: () => (opts.crypto === false ? undefined : { isEncryptionEnabledInRoom: async () => (opts.cryptoEnabled ? opts.cryptoEnabled() : false) }),
  };
}

const fast = { timeoutMs: 120, pollMs: 10 };

describe("ensureSafeToSend", () => {
  it("allows plaintext only in rooms that aren't and never were encrypted", async () => {
    const reg = new EncryptedRoomRegistry(null);
    await expect(ensureSafeToSend(client({ room: { encState: false } }), "!r", reg, fast)).resolves.toEqual({ encrypted: false });
  });
  it("refuses to send into a room it hasn't synced yet (just created)", async () => {
    const reg = new EncryptedRoomRegistry(null);
    reg.mark("!r");
    await expect(ensureSafeToSend(client({ room: null }), "!r", reg, fast)).rejects.toBeInstanceOf(NotSafeToSendError);
  });
  it("waits while the room is known to be encrypted but the SDK isn't ready, then refuses", async () => {
    const reg = new EncryptedRoomRegistry(null);
    reg.mark("!r");
    await expect(ensureSafeToSend(client({ room: { encState: false }, cryptoEnabled: () => false }), "!r", reg, fast)).rejects.toBeInstanceOf(NotSafeToSendError);
  });
  it("waits for the SDK to agree and then reports encrypted", async () => {
    const reg = new EncryptedRoomRegistry(null);
    reg.mark("!r");
    const t0 = Date.now();
    const res = await ensureSafeToSend(client({ room: { encState: true }, cryptoEnabled: () => Date.now() - t0 > 40 }), "!r", reg, { timeoutMs: 1000, pollMs: 10 });
    expect(res).toEqual({ encrypted: true });
  });
  it("remembers rooms whose state says encrypted", async () => {
    const reg = new EncryptedRoomRegistry(null);
    await ensureSafeToSend(client({ room: { encState: true }, cryptoEnabled: () => true }), "!r", reg, fast);
    expect(reg.has("!r")).toBe(true);
  });
  it("refuses encrypted rooms without crypto", async () => {
    const reg = new EncryptedRoomRegistry(null);
    await expect(ensureSafeToSend(client({ room: { encState: true }, crypto: false }), "!r", reg, fast)).rejects.toThrow(/encryption isn't available/);
  });
  it("does not send before we've joined", async () => {
    const reg = new EncryptedRoomRegistry(null);
    await expect(ensureSafeToSend(client({ room: { encState: false, membership: "invite" } }), "!r", reg, fast)).rejects.toBeInstanceOf(NotSafeToSendError);
  });
  it("persists the registry", () => {
    const a = new EncryptedRoomRegistry(localStorage);
    a.mark("!persisted");
    expect(new EncryptedRoomRegistry(localStorage).has("!persisted")).toBe(true);
  });
});

// matrix-js-sdk decides whether to encrypt from the room state it has synced. Right after createRoom
// (or a join that hasn't synced yet) it has none, and would send in plaintext. Every send goes through
// ensureSafeToSend(), which refuses until the SDK agrees the room is encrypted whenever we have any
// reason to believe it is.

export interface GuardClient {
  getRoom(roomId: string): { hasEncryptionStateEvent(): boolean; getMyMembership(): string } | null;
  getCrypto(): { isEncryptionEnabledInRoom(roomId: string): Promise<boolean> } | undefined;
}

const KEY = "wspr.encryptedRooms";

export class EncryptedRoomRegistry {
  private rooms = new Set<string>();
  constructor(private storage: Storage | null = typeof localStorage !== "undefined" ? localStorage : null) {
    try {
      const raw = this.storage?.getItem(KEY);
      const list: unknown = raw ? JSON.parse(raw) : [];
      if (Array.isArray(list)) for (const r of list) if (typeof r === "string") this.rooms.add(r);
    } catch {
      /* ignore */
    }
  }
  /** Remember that a room is (or must become) encrypted. Never forgotten: encryption can't be turned off. */
  mark(roomId: string): void {
    if (this.rooms.has(roomId)) return;
    this.rooms.add(roomId);
    try {
      this.storage?.setItem(KEY, JSON.stringify([...this.rooms]));
    } catch {
      /* ignore */
    }
  }
  has(roomId: string): boolean {
    return this.rooms.has(roomId);
  }
}

export class NotSafeToSendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotSafeToSendError";
  }
}

/** Resolves when sending to the room can't leak plaintext; rejects otherwise (after waiting up to timeoutMs). */
export async function ensureSafeToSend(
  client: GuardClient,
  roomId: string,
  registry: EncryptedRoomRegistry,
  { timeoutMs = 15000, pollMs = 200 }: { timeoutMs?: number; pollMs?: number } = {},
): Promise<{ encrypted: boolean }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const room = client.getRoom(roomId);
    if (room && room.getMyMembership() === "join") {
      const stateSaysEncrypted = room.hasEncryptionStateEvent();
      if (stateSaysEncrypted) registry.mark(roomId);
      const crypto = client.getCrypto();
      const cryptoSaysEncrypted = crypto ? await crypto.isEncryptionEnabledInRoom(roomId) : false;
      if (cryptoSaysEncrypted) {
        registry.mark(roomId);
        return { encrypted: true };
      }
      if (!stateSaysEncrypted && !registry.has(roomId)) return { encrypted: false };
      if (!crypto) throw new NotSafeToSendError("This room is encrypted but encryption isn't available on this device.");
    }
    if (Date.now() >= deadline) {
      throw new NotSafeToSendError(
        room ? "Still setting up encryption for this room. Your message was not sent; try again in a moment." : "This room isn't ready yet. Try again in a moment.",
      );
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

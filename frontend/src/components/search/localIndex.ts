// Search in encrypted rooms: the server only holds ciphertext, so this device keeps its own index of the
// messages it has decrypted (IndexedDB, one database per session, deleted at sign-out with the crypto
// store). It grows as messages are decrypted: new ones as they arrive, older ones as history is read
// back (or "Search further back" pages back for it). It covers exactly what this device has decrypted:
// `coverage` says how far back that goes per room.
//
// Words are matched by prefix, every word of the query must match, newest first.

export interface IndexedMessage {
  id: string;
  roomId: string;
  ts: number;
  sender: string;
  body: string;
  /** the thread this message is a reply in */
  threadRoot?: string;
  words: string[];
}

export interface Coverage {
  count: number;
  oldestTs?: number;
}

const DB_VERSION = 1;
const MAX_BODY = 4000;
const MAX_CANDIDATES = 5000;

export function searchDatabaseName(userId: string, deviceId: string): string {
  return `wspr-search-${userId}-${deviceId}`;
}

/** Lower-case words without accents: "Café, NAÏVE!" → ["cafe", "naive"]. */
export function tokenize(text: string): string[] {
  const words = text
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .match(/[\p{L}\p{N}]+/gu);
  return [...new Set((words ?? []).filter((w) => w.length <= 40))];
}

/** Whether a message's words contain every query word as a prefix of one of them. */
export function matches(words: string[], query: string[]): boolean {
  return query.every((q) => words.some((w) => w.startsWith(q)));
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

export class LocalIndex {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(name: string): Promise<LocalIndex> {
    const req = indexedDB.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      const messages = db.createObjectStore("messages", { keyPath: "id" });
      messages.createIndex("room", ["roomId", "ts"]);
      messages.createIndex("words", "words", { multiEntry: true });
      messages.createIndex("ts", "ts");
    };
    const db = await request(req);
    // another tab upgrading or deleting the database (sign-out): let it
    db.onversionchange = () => db.close();
    return new LocalIndex(db);
  }

  close(): void {
    this.db.close();
  }

  /** Adds or replaces messages (an edit replaces its original's text under the original's id). */
  async put(messages: Omit<IndexedMessage, "words">[]): Promise<void> {
    if (!messages.length) return;
    const tx = this.db.transaction("messages", "readwrite");
    const store = tx.objectStore("messages");
    for (const m of messages) {
      const body = m.body.slice(0, MAX_BODY);
      store.put({ ...m, body, words: tokenize(body) });
    }
    await done(tx);
  }

  async remove(ids: string[]): Promise<void> {
    if (!ids.length) return;
    const tx = this.db.transaction("messages", "readwrite");
    for (const id of ids) tx.objectStore("messages").delete(id);
    await done(tx);
  }

  async get(id: string): Promise<IndexedMessage | undefined> {
    return request(this.db.transaction("messages").objectStore("messages").get(id) as IDBRequest<IndexedMessage | undefined>);
  }

  /**
   * Messages matching every word of `query` (by prefix), newest first, in `rooms` if given. The rarest
   * looking word (the longest) picks the candidates from the word index; the rest are checked on them.
   */
  async search(query: string, opts: { rooms?: string[]; limit?: number } = {}): Promise<IndexedMessage[]> {
    const words = tokenize(query);
    if (!words.length) return [];
    const pivot = [...words].sort((a, b) => b.length - a.length)[0];
    const index = this.db.transaction("messages").objectStore("messages").index("words");
    const range = IDBKeyRange.bound(pivot, `${pivot}\uffff`);
    const rooms = opts.rooms ? new Set(opts.rooms) : null;
    const found = new Map<string, IndexedMessage>();
    await new Promise<void>((resolve, reject) => {
      const req = index.openCursor(range);
      req.onerror = () => reject(req.error ?? new Error("IndexedDB cursor failed"));
      req.onsuccess = () => {
        const cursor = req.result;
        if (!cursor || found.size >= MAX_CANDIDATES) return resolve();
        const m = cursor.value as IndexedMessage;
        if ((!rooms || rooms.has(m.roomId)) && matches(m.words, words)) found.set(m.id, m);
        cursor.continue();
      };
    });
    return [...found.values()].sort((a, b) => b.ts - a.ts).slice(0, opts.limit ?? 50);
  }

  /** How many messages of a room are indexed, and the oldest one's time. */
  async coverage(roomId: string): Promise<Coverage> {
    const index = this.db.transaction("messages").objectStore("messages").index("room");
    const range = IDBKeyRange.bound([roomId, -Infinity], [roomId, Infinity]);
    const [count, first] = await Promise.all([request(index.count(range)), request(index.openCursor(range))]);
    return { count, oldestTs: (first?.value as IndexedMessage | undefined)?.ts };
  }
}

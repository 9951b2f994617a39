// Ctrl+K (⌘K): jump to any room or person by typing a part of its name, address or user ID; arrows and
// Enter, or a click. Without a match, the public room directory is one Enter away.
import { useState, type KeyboardEvent } from "react";
import { EventType, type MatrixClient } from "matrix-js-sdk";
import { sortRooms, summarise, type RoomSummary } from "../../lib/rooms";
import { directRoomUserId } from "../../lib/client";
import { Avatar } from "../Avatar";
import { Dialog } from "../Dialog";
import "./search.css";

export interface Candidate extends RoomSummary {
  /** other names it answers to: address, the DM partner's user ID */
  aliases: string[];
}

/** How well a room matches what was typed (0: not at all): name start, word start, anywhere, an alias. */
export function matchScore(c: Pick<Candidate, "name" | "aliases">, query: string): number {
  const q = query.trim().toLowerCase();
  if (!q) return 1;
  const name = c.name.toLowerCase();
  if (name.startsWith(q)) return 4;
  if (name.split(/[\s\-_.:#@]+/).some((w) => w.startsWith(q))) return 3;
  if (name.includes(q)) return 2;
  if (c.aliases.some((a) => a.toLowerCase().includes(q))) return 1;
  return 0;
}

/** Best matches first; among equals, unread, then the most recent activity (the room list's order). */
export function rankRooms<T extends Candidate>(rooms: T[], query: string): T[] {
  const scored = sortRooms(rooms)
    .map((c, order) => ({ c, order, score: matchScore(c, query) }))
    .filter((x) => x.score > 0);
  return scored.sort((a, b) => b.score - a.score || Number(b.c.unread > 0) - Number(a.c.unread > 0) || a.order - b.order).map((x) => x.c);
}

export function RoomSwitcher({ client, onOpen, onExplore, onClose }: { client: MatrixClient; onOpen: (roomId: string) => void; onExplore: (term: string) => void; onClose: () => void }) {
  const [query, setQuery] = useState("");
  const [sel, setSel] = useState(0);
  const directRooms = new Set(Object.values(client.getAccountData(EventType.Direct)?.getContent() ?? {}).flat() as string[]);
  const candidates: Candidate[] = client
    .getRooms()
    .filter((r) => ["join", "invite"].includes(r.getMyMembership()))
    .map((r) => {
      const dm = directRoomUserId(client, r);
      return { ...summarise(client, r, directRooms), aliases: [r.getCanonicalAlias(), ...r.getAltAliases(), dm].filter((a): a is string => !!a) };
    });
  const shown = rankRooms(candidates, query).slice(0, 30);
  const exploreIndex = shown.length; // the last entry: the directory
  const count = shown.length + (query.trim() ? 1 : 0);
  const current = Math.min(sel, Math.max(0, count - 1));

  function choose(i: number) {
    if (i < shown.length) onOpen(shown[i].roomId);
    else if (query.trim()) onExplore(query.trim());
  }

  function onKey(e: KeyboardEvent) {
    if (e.key === "ArrowDown" || (e.key === "Tab" && !e.shiftKey)) {
      e.preventDefault();
      setSel((current + 1) % Math.max(1, count));
    } else if (e.key === "ArrowUp" || (e.key === "Tab" && e.shiftKey)) {
      e.preventDefault();
      setSel((current - 1 + count) % Math.max(1, count));
    } else if (e.key === "Enter") {
      e.preventDefault();
      choose(current);
    }
  }

  return (
    <Dialog title="Go to a room" onClose={onClose} testId="room-switcher">
      <div className="stack switcher">
        <input
          autoFocus
          value={query}
          onChange={(e) => {
            setQuery(e.target.value);
            setSel(0);
          }}
          onKeyDown={onKey}
          placeholder="Room, person or address"
          aria-label="Room, person or address"
          role="combobox"
          aria-expanded="true"
          aria-controls="switcher-list"
          aria-activedescendant={count ? `switcher-${current}` : undefined}
          data-testid="switcher-input"
        />
        <ul className="switcher-list" id="switcher-list" role="listbox" aria-label="Rooms">
          {shown.map((c, i) => (
            <li key={c.roomId} role="option" id={`switcher-${i}`} aria-selected={i === current}>
              <button className={`switcher-item ${i === current ? "on" : ""}`} onClick={() => choose(i)} onMouseMove={() => setSel(i)} tabIndex={-1} data-testid="switcher-item" data-room-id={c.roomId}>
                <Avatar client={client} id={c.roomId} name={c.name} mxc={client.getRoom(c.roomId)?.getMxcAvatarUrl()} size={30} />
                <span className="switcher-item-text">
                  <strong className="ellipsis">{c.name}</strong>
                  <span className="muted small ellipsis">{c.membership === "invite" ? "Invitation" : (c.aliases[0] ?? (c.isDirect ? "Direct message" : c.encrypted ? "Encrypted room" : "Room"))}</span>
                </span>
                {c.unread > 0 && <span className={`badge ${c.highlight ? "badge-highlight" : ""}`}>{c.unread}</span>}
              </button>
            </li>
          ))}
          {query.trim() && (
            <li role="option" id={`switcher-${exploreIndex}`} aria-selected={current === exploreIndex}>
              <button className={`switcher-item ${current === exploreIndex ? "on" : ""}`} onClick={() => choose(exploreIndex)} onMouseMove={() => setSel(exploreIndex)} tabIndex={-1} data-testid="switcher-explore">
                <span className="switcher-item-text">
                  <strong className="ellipsis">Search public rooms for “{query.trim()}”</strong>
                  <span className="muted small">In the room directory</span>
                </span>
              </button>
            </li>
          )}
        </ul>
        {!shown.length && !query.trim() && <p className="muted small">No rooms yet.</p>}
        <div className="switcher-hint muted small" aria-hidden="true">
          <span>
            <kbd>↑</kbd> <kbd>↓</kbd> to choose
          </span>
          <span>
            <kbd>Enter</kbd> to open
          </span>
          <span>
            <kbd>Esc</kbd> to close
          </span>
        </div>
      </div>
    </Dialog>
  );
}

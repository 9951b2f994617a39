// Finding someone to talk to: the user directory (POST /user_directory/search) as you type, or a full
// user ID as typed. Arrows and Enter choose from the list.
import { useEffect, useState, type KeyboardEvent } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { Avatar } from "../Avatar";
import "./search.css";

export interface Person {
  userId: string;
  displayName?: string;
  avatarUrl?: string;
}

/** A full user ID typed in: "@bob:example.org", or "bob" on our server; null if it can't be one. */
export function typedUserId(text: string, domain: string): string | null {
  let t = text.trim();
  if (!t || /\s/.test(t)) return null;
  if (!t.startsWith("@")) t = `@${t}`;
  if (!t.includes(":")) t = `${t}:${domain}`;
  return /^@[^:]+:[^:]+(:\d+)?$/.test(t) ? t : null;
}

export function UserPicker({ client, value, onChange, onPick, exclude }: {
  client: MatrixClient;
  value: string;
  onChange: (text: string) => void;
  /** a person chosen from the list (Enter on the typed ID submits the form instead) */
  onPick: (p: Person) => void;
  exclude: string[];
}) {
  const [found, setFound] = useState<{ term: string; people: Person[]; limited: boolean } | null>(null);
  const [sel, setSel] = useState(-1);
  const term = value.trim();

  useEffect(() => {
    if (!term) return;
    let alive = true;
    const t = setTimeout(() => {
      client.searchUserDirectory({ term, limit: 10 }).then(
        (r) => alive && setFound({ term, people: r.results.map((u) => ({ userId: u.user_id, displayName: u.display_name, avatarUrl: u.avatar_url })), limited: r.limited }),
        () => alive && setFound({ term, people: [], limited: false }),
      );
    }, 250);
    return () => {
      alive = false;
      clearTimeout(t);
    };
  }, [client, term]);

  const people = term && found?.term === term ? found.people.filter((p) => !exclude.includes(p.userId)) : [];
  const current = Math.min(sel, people.length - 1);

  function onKey(e: KeyboardEvent) {
    if (!people.length) return;
    if (e.key === "ArrowDown") {
      e.preventDefault();
      setSel((current + 1) % people.length);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      setSel(current <= 0 ? people.length - 1 : current - 1);
    } else if (e.key === "Enter" && current >= 0) {
      e.preventDefault();
      onPick(people[current]);
    }
  }

  return (
    <div className="stack tight">
      <label className="field">
        <span>Name or user ID</span>
        <input
          autoFocus
          value={value}
          onChange={(e) => {
            onChange(e.target.value);
            setSel(-1);
          }}
          onKeyDown={onKey}
          placeholder={`Alice, or @alice:${client.getDomain() ?? "server"}`}
          autoComplete="off"
          role="combobox"
          aria-expanded={people.length > 0}
          aria-controls="people-results"
          aria-activedescendant={current >= 0 ? `person-${current}` : undefined}
          data-testid="dm-user"
          required
        />
      </label>
      {people.length > 0 && (
        <ul className="people-results" id="people-results" role="listbox" aria-label="People">
          {people.map((p, i) => (
            <li key={p.userId} id={`person-${i}`} role="option" aria-selected={i === current}>
              <button type="button" className={`person ${i === current ? "on" : ""}`} onClick={() => onPick(p)} data-testid="person" data-user-id={p.userId}>
                <Avatar client={client} id={p.userId} name={p.displayName || p.userId} mxc={p.avatarUrl} size={32} />
                <span className="person-text">
                  <strong className="ellipsis">{p.displayName || p.userId}</strong>
                  <span className="muted small ellipsis">{p.userId}</span>
                </span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {term && found?.term === term && !people.length && <span className="muted small">No one found in the directory. You can still start a chat with a full user ID.</span>}
    </div>
  );
}

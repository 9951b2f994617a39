// The list of completions above the composer (members for @, emoji for :), driven from the composer's
// keyboard: it never takes the focus from the text.
import type { MatrixClient } from "matrix-js-sdk";
import { Avatar } from "../components/Avatar";

export type Suggestion =
  | { kind: "user"; userId: string; name: string; mxc?: string }
  | { kind: "room" }
  | { kind: "emoji"; unicode: string; shortcode: string };

export function suggestionKey(s: Suggestion): string {
  return s.kind === "user" ? s.userId : s.kind === "room" ? "@room" : s.unicode;
}

export function Suggestions({ client, items, selected, onPick, onHover }: { client: MatrixClient; items: Suggestion[]; selected: number; onPick: (s: Suggestion) => void; onHover: (i: number) => void }) {
  return (
    <ul className="suggestions" role="listbox" aria-label="Suggestions" id="composer-suggestions" data-testid="suggestions">
      {items.map((s, i) => (
        <li
          key={suggestionKey(s)}
          id={`suggestion-${i}`}
          role="option"
          aria-selected={i === selected}
          className={i === selected ? "selected" : ""}
          // mousedown, not click: the text keeps the focus (and the caret)
          onMouseDown={(e) => {
            e.preventDefault();
            onPick(s);
          }}
          onMouseEnter={() => onHover(i)}
          data-testid="suggestion"
        >
          {s.kind === "user" ? (
            <>
              <Avatar client={client} id={s.userId} name={s.name} mxc={s.mxc} size={24} />
              <strong className="ellipsis">{s.name}</strong>
              <span className="muted small ellipsis">{s.userId}</span>
            </>
          ) : s.kind === "room" ? (
            <>
              <span className="suggestion-icon">@</span>
              <strong>@room</strong>
              <span className="muted small">Notify everyone in this room</span>
            </>
          ) : (
            <>
              <span className="suggestion-emoji">{s.unicode}</span>
              <span>:{s.shortcode}:</span>
            </>
          )}
        </li>
      ))}
    </ul>
  );
}

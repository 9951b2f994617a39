// The emoji picker: search, recently used, and every emoji by category. Opens beside the button that
// asked for it (a bottom sheet on a phone), for the composer and for reactions alike.
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { createPortal } from "react-dom";
import { loadEmoji, recentEmoji, rememberEmoji, searchEmoji, type Emoji, type EmojiData } from "../lib/emoji";
import { IconSearch } from "./Icons";
import "./emoji-picker.css";

const WIDTH = 344;
const HEIGHT = 380;

interface Props {
  /** the button the picker belongs to (it opens next to it) */
  anchor: HTMLElement | null;
  onPick: (unicode: string) => void;
  onClose: () => void;
  label?: string;
}

function place(anchor: HTMLElement | null): { left: number; top: number } | null {
  if (!anchor || window.innerWidth < 600) return null; // phones: a bottom sheet
  const r = anchor.getBoundingClientRect();
  const left = Math.max(8, Math.min(r.right - WIDTH, window.innerWidth - WIDTH - 8));
  const above = r.top - HEIGHT - 8;
  const top = above >= 8 ? above : Math.min(r.bottom + 8, window.innerHeight - HEIGHT - 8);
  return { left, top };
}

export function EmojiPicker({ anchor, onPick, onClose, label = "Emoji" }: Props) {
  const [data, setData] = useState<EmojiData | null>(null);
  const [failed, setFailed] = useState(false);
  const [query, setQuery] = useState("");
  const [pos, setPos] = useState<{ left: number; top: number } | null>(null);
  const root = useRef<HTMLDivElement>(null);
  const grid = useRef<HTMLDivElement>(null);
  const [recent] = useState(recentEmoji);

  useEffect(() => {
    let alive = true;
    loadEmoji().then(
      (d) => alive && setData(d),
      () => alive && setFailed(true),
    );
    return () => {
      alive = false;
    };
  }, []);
  useLayoutEffect(() => setPos(place(anchor)), [anchor]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        onClose();
      }
    };
    const onDown = (e: PointerEvent) => {
      const t = e.target as Node;
      if (!root.current?.contains(t) && !anchor?.contains(t)) onClose();
    };
    window.addEventListener("keydown", onKey, true);
    window.addEventListener("pointerdown", onDown, true);
    return () => {
      window.removeEventListener("keydown", onKey, true);
      window.removeEventListener("pointerdown", onDown, true);
    };
  }, [anchor, onClose]);

  const pick = (unicode: string) => {
    rememberEmoji(unicode);
    onPick(unicode);
  };
  const results = data && query.trim() ? searchEmoji(data, query, 80) : null;
  const byUnicode = data ? new Map(data.all.map((e) => [e.unicode, e])) : null;
  const recentList = byUnicode ? recent.map((u) => byUnicode.get(u)).filter((e): e is Emoji => !!e) : [];

  const button = (e: Emoji) => (
    <button key={e.unicode} type="button" className="emoji-cell" title={e.shortcodes[0] ? `:${e.shortcodes[0]}:` : e.label} aria-label={e.label} onClick={() => pick(e.unicode)}>
      {e.unicode}
    </button>
  );

  const sheet = !pos;
  return createPortal(
    <>
      {sheet && <div className="emoji-backdrop" />}
      <div ref={root} className={`emoji-picker ${sheet ? "sheet" : ""}`} style={pos ? { left: pos.left, top: pos.top } : undefined} role="dialog" aria-label={label} data-testid="emoji-picker">
        <label className="search emoji-search">
          <IconSearch width={16} height={16} />
          <input autoFocus value={query} onChange={(e) => setQuery(e.target.value)} placeholder="Search emoji" aria-label="Search emoji" data-testid="emoji-search"
            onKeyDown={(e) => {
              if (e.key === "Enter" && results?.[0]) {
                e.preventDefault();
                pick(results[0].unicode);
              }
            }}
          />
        </label>
        {data && !results && (
          <nav className="emoji-groups" aria-label="Categories">
            {data.groups.map((g) => (
              <button key={g.id} type="button" title={g.name} aria-label={g.name} onClick={() => grid.current?.querySelector(`[data-group="${g.id}"]`)?.scrollIntoView({ block: "start" })}>
                {g.emoji[0]?.unicode}
              </button>
            ))}
          </nav>
        )}
        <div className="emoji-grid-scroll" ref={grid}>
          {failed ? (
            <p className="muted small center">Couldn't load emoji. Check your connection and try again.</p>
          ) : !data ? (
            <p className="muted small center" role="status">Loading emoji…</p>
          ) : results ? (
            results.length ? (
              <div className="emoji-grid" data-testid="emoji-results">{results.map(button)}</div>
            ) : (
              <p className="muted small center">No emoji match “{query}”.</p>
            )
          ) : (
            <>
              {recentList.length > 0 && (
                <section>
                  <h4>Recently used</h4>
                  <div className="emoji-grid">{recentList.map(button)}</div>
                </section>
              )}
              {data.groups.map((g) => (
                <section key={g.id} data-group={g.id}>
                  <h4>{g.name}</h4>
                  <div className="emoji-grid">{g.emoji.map(button)}</div>
                </section>
              ))}
            </>
          )}
        </div>
      </div>
    </>,
    document.body,
  );
}

// Keyboard use of a list of messages (the timeline, a thread): one Tab stop for the whole list (a
// roving tabindex, on the message last focused, else the newest), arrow keys to move between messages,
// Home/End for the first and last loaded. A focused message shows its actions (CSS :focus-within), and
// Tab from it reaches them, as in Element Web.
import { useState, type FocusEvent, type KeyboardEvent } from "react";

const MESSAGE = "[data-testid=message]";

export function useMessageFocus(ids: string[]) {
  const [current, setCurrent] = useState<string | null>(null);
  const active = current && ids.includes(current) ? current : (ids[ids.length - 1] ?? null);
  return {
    tabIndexFor: (id: string) => (id === active ? 0 : -1),
    /** on the list's container: arrows move between messages while a message itself has focus */
    onKeyDown: (e: KeyboardEvent<HTMLElement>) => {
      const t = e.target as HTMLElement;
      if (!t.matches(MESSAGE) || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
      const list = Array.from(e.currentTarget.querySelectorAll<HTMLElement>(MESSAGE));
      const i = list.indexOf(t);
      const next = e.key === "ArrowUp" ? i - 1 : e.key === "ArrowDown" ? i + 1 : e.key === "Home" ? 0 : e.key === "End" ? list.length - 1 : null;
      if (next === null) return;
      e.preventDefault();
      const el = list.at(Math.max(0, Math.min(list.length - 1, next)));
      el?.focus();
      el?.scrollIntoView({ block: "nearest" });
    },
    /**
     * on the list's container: a message that gets focus becomes the list's Tab stop. Only the message
     * itself (arrow keys, Tab, a click on its text), not a control inside it: re-rendering the list
     * between a control's mousedown and mouseup could swap the control and lose the click.
     */
    onFocus: (e: FocusEvent<HTMLElement>) => {
      if (!e.target.matches(MESSAGE)) return;
      const id = e.target.getAttribute("data-event-id");
      if (id && id !== current) setCurrent(id);
    },
  };
}

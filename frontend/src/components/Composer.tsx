// The message composer: Markdown text with a formatting toolbar, @-mentions and :emoji: completion, an
// emoji picker, files to send (picked, pasted or dropped, previewed first), a draft kept per room, and
// Up-arrow to edit the last message.
import { useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent, type RefObject } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { plainTextOf, type TimelineItem } from "../lib/timeline";
import { applyCompletion, findTrigger, rankMembers, type Trigger } from "../lib/autocomplete";
import { applyFormat, shortcutFormat, type Format } from "../lib/formatting";
import { loadDraft, saveDraft } from "../lib/drafts";
import { editableText, type Mention } from "../lib/mentions";
import { loadEmoji, searchEmoji, type EmojiData } from "../lib/emoji";
import { IconPaperclip, IconSend, IconSmile, IconX } from "./Icons";
import { EmojiPicker } from "./EmojiPicker";
import { Suggestions, type Suggestion } from "../composer/Suggestions";
import { FormatToolbar } from "../composer/FormatToolbar";
import { AttachmentTray, type PendingFile } from "../composer/AttachmentTray";
import { useFileDrop } from "../composer/useFileDrop";
import "../composer/composer.css";

interface Props {
  client: MatrixClient;
  room: Room;
  replyTo: TimelineItem | null;
  editing: TimelineItem | null;
  onCancel: () => void;
  onSend: (text: string, mentions: Mention[]) => Promise<void>;
  onFile: (file: File, progress: (f: number) => void) => Promise<void>;
  /** Up-arrow in an empty composer: edit my last message */
  onEditLast: () => void;
  /** where files can be dropped (the whole room view) */
  dropTarget: RefObject<HTMLElement | null>;
  /** where the draft is kept (default: the room; a thread's composer keeps its own) */
  draftKey?: string;
  placeholder?: string;
}

const TOOLBAR_KEY = "wspr.formatting";

function toolbarWanted(): boolean {
  const v = localStorage.getItem(TOOLBAR_KEY);
  return v ? v === "on" : window.innerWidth >= 700;
}

let nextFileId = 1;

export function Composer({ client, room, replyTo, editing, onCancel, onSend, onFile, onEditLast, dropTarget, draftKey = room.roomId, placeholder }: Props) {
  const me = client.getSafeUserId();
  const [draft] = useState(() => loadDraft(me, draftKey));
  const [text, setText] = useState(draft?.text ?? "");
  const [mentions, setMentions] = useState<Mention[]>(draft?.mentions ?? []);
  const [files, setFiles] = useState<PendingFile[]>([]);
  const [uploading, setUploading] = useState<{ name: string; progress: number } | null>(null);
  const [trigger, setTrigger] = useState<Trigger | null>(null);
  const [selected, setSelected] = useState(0);
  const [emoji, setEmoji] = useState<EmojiData | null>(null);
  const [picker, setPicker] = useState<HTMLElement | null>(null);
  const [toolbar, setToolbar] = useState(toolbarWanted);
  const input = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const pendingCaret = useRef<[number, number] | null>(null);
  const typingSent = useRef(0);
  // what was in the composer before an edit started: put back when the edit ends
  const stashed = useRef<{ text: string; mentions: Mention[] } | null>(null);
  const encrypted = room.hasEncryptionStateEvent();
  const dragging = useFileDrop(dropTarget, (list) => addFiles(list));

  // starting an edit puts the message's text in the composer (once per message edited)
  const [editingShown, setEditingShown] = useState(editing);
  if (editing !== editingShown) {
    setEditingShown(editing);
    if (editing && !editingShown) stashed.current = { text, mentions };
    if (editing) {
      const e = editableText(editing.content);
      setText(e.text);
      setMentions(e.mentions);
      pendingCaret.current = [e.text.length, e.text.length];
    } else if (stashed.current) {
      setText(stashed.current.text);
      setMentions(stashed.current.mentions);
      stashed.current = null;
    }
  }
  useEffect(() => {
    if (editing || replyTo) input.current?.focus();
  }, [editing, replyTo]);
  // the draft: kept while typing (not while editing a sent message)
  useEffect(() => {
    if (editing) return;
    saveDraft(me, draftKey, { text, mentions: mentions.filter((m) => text.includes(m.text)) });
  }, [text, mentions, editing, me, draftKey]);
  useLayoutEffect(() => {
    const el = input.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
    if (pendingCaret.current) {
      el.setSelectionRange(...pendingCaret.current);
      pendingCaret.current = null;
    }
  }, [text]);

  // completions for what is typed at the caret
  const suggestions: Suggestion[] = [];
  if (trigger?.kind === "user") {
    const members = room.getMembers().filter((m) => m.membership === "join" && m.userId !== me);
    for (const m of rankMembers(members, trigger.query)) suggestions.push({ kind: "user", userId: m.userId, name: m.name, mxc: m.getMxcAvatarUrl() });
    if ("room".startsWith(trigger.query.toLowerCase()) && room.currentState.mayTriggerNotifOfType("room", me)) suggestions.push({ kind: "room" });
  } else if (trigger?.kind === "emoji" && emoji) {
    for (const e of searchEmoji(emoji, trigger.query, 8)) if (e.shortcodes.length) suggestions.push({ kind: "emoji", unicode: e.unicode, shortcode: e.shortcodes.find((c) => c.startsWith(trigger.query)) ?? e.shortcodes[0] });
  }
  const open = suggestions.length > 0;
  const sel = Math.min(selected, Math.max(0, suggestions.length - 1));

  function updateTrigger(value: string, caret: number) {
    const t = findTrigger(value, caret);
    setTrigger(t);
    setSelected(0);
    if (t?.kind === "emoji" && !emoji) loadEmoji().then(setEmoji, () => {});
  }

  function complete(s: Suggestion) {
    if (!trigger) return;
    let insert: string;
    if (s.kind === "user") {
      insert = `@${s.name}`;
      setMentions((ms) => [...ms.filter((m) => m.text !== insert), { text: insert, userId: s.userId }]);
    } else if (s.kind === "room") {
      insert = "@room";
    } else {
      insert = s.unicode;
    }
    const r = applyCompletion(text, trigger, insert);
    setText(r.text);
    pendingCaret.current = [r.caret, r.caret];
    setTrigger(null);
    input.current?.focus();
  }

  function insertAtCaret(value: string) {
    const el = input.current;
    const s = el?.selectionStart ?? text.length;
    const e = el?.selectionEnd ?? text.length;
    const next = text.slice(0, s) + value + text.slice(e);
    setText(next);
    pendingCaret.current = [s + value.length, s + value.length];
    el?.focus();
  }

  function format(f: Format) {
    const el = input.current;
    const r = applyFormat({ text, selStart: el?.selectionStart ?? text.length, selEnd: el?.selectionEnd ?? text.length }, f);
    setText(r.text);
    pendingCaret.current = [r.selStart, r.selEnd];
    el?.focus();
  }

  function notifyTyping(value: string) {
    const now = Date.now();
    if (value && now - typingSent.current > 3000) {
      typingSent.current = now;
      client.sendTyping(room.roomId, true, 5000).catch(() => {});
    } else if (!value && typingSent.current) {
      typingSent.current = 0;
      client.sendTyping(room.roomId, false, 0).catch(() => {});
    }
  }

  function addFiles(list: FileList | File[] | null) {
    const add = Array.from(list ?? []).map((file) => ({ id: nextFileId++, file, preview: file.type.startsWith("image/") ? URL.createObjectURL(file) : undefined }));
    if (add.length) setFiles((fs) => [...fs, ...add]);
    input.current?.focus();
  }

  function removeFile(id: number) {
    setFiles((fs) => {
      for (const f of fs) if (f.id === id && f.preview) URL.revokeObjectURL(f.preview);
      return fs.filter((f) => f.id !== id);
    });
  }
  const filesRef = useRef(files);
  useEffect(() => {
    filesRef.current = files;
  }, [files]);
  useEffect(() => () => filesRef.current.forEach((f) => f.preview && URL.revokeObjectURL(f.preview)), []);

  async function sendFiles(toSend: PendingFile[]) {
    for (const { id, file } of toSend) {
      setUploading({ name: file.name, progress: 0 });
      try {
        await onFile(file, (p) => setUploading({ name: file.name, progress: p }));
        removeFile(id);
      } catch {
        return false; // error shown by the room view; the file stays in the tray to try again
      } finally {
        setUploading(null);
      }
    }
    return true;
  }

  async function submit() {
    if (uploading) return;
    if (files.length && !editing && !(await sendFiles(files))) return;
    const value = text.trim();
    if (!value) return;
    const used = mentions.filter((m) => value.includes(m.text));
    setText("");
    setMentions([]);
    setTrigger(null);
    if (!editing) saveDraft(me, draftKey, { text: "", mentions: [] });
    typingSent.current = 0;
    client.sendTyping(room.roomId, false, 0).catch(() => {});
    try {
      await onSend(value, used);
    } catch {
      // keep what they wrote if it couldn't be sent
      setText(value);
      setMentions(used);
    }
  }

  function cancel() {
    onCancel();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.nativeEvent.isComposing) return;
    if (open) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setSelected((sel + (e.key === "ArrowDown" ? 1 : suggestions.length - 1)) % suggestions.length);
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        complete(suggestions[sel]);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        setTrigger(null);
        return;
      }
    }
    const f = shortcutFormat(e);
    if (f) {
      e.preventDefault();
      format(f);
    } else if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      void submit();
    } else if (e.key === "Escape" && (replyTo || editing)) {
      cancel();
    } else if (e.key === "ArrowUp" && !text && !editing && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      onEditLast();
    }
  }

  const canSend = !!text.trim() || (files.length > 0 && !editing);
  return (
    <div className={`composer ${dragging ? "dragging" : ""}`} data-testid="composer">
      {dragging && (
        <div className="drop-overlay" data-testid="drop-overlay">
          <IconPaperclip width={28} height={28} />
          <span>Drop to attach{encrypted ? " (encrypted)" : ""}</span>
        </div>
      )}
      {(replyTo || editing) && (
        <div className="composer-context">
          <span className="ellipsis">
            {editing ? "Editing" : `Replying to ${room.getMember(replyTo!.sender)?.name ?? replyTo!.sender}`}
            <span className="muted"> · {plainTextOf(editing ?? replyTo!)}</span>
          </span>
          <button className="icon-btn sm" aria-label="Cancel" onClick={cancel}>
            <IconX width={16} height={16} />
          </button>
        </div>
      )}
      {files.length > 0 && !editing && <AttachmentTray files={files} encrypted={encrypted} onRemove={removeFile} />}
      {uploading && (
        <div className="upload-progress small">
          Uploading {uploading.name}{encrypted ? " (encrypted)" : ""}… {Math.round(uploading.progress * 100)}%
          <div className="bar"><div style={{ width: `${Math.round(uploading.progress * 100)}%` }} /></div>
        </div>
      )}
      {toolbar && <FormatToolbar onFormat={format} />}
      <div className="composer-row">
        {open && <Suggestions client={client} items={suggestions} selected={sel} onPick={complete} onHover={setSelected} />}
        <button className="icon-btn" aria-label="Attach a file" onClick={() => fileInput.current?.click()} data-testid="attach">
          <IconPaperclip />
        </button>
        <input ref={fileInput} type="file" hidden multiple data-testid="file-input" onChange={(e) => { addFiles(e.target.files); e.target.value = ""; }} />
        <textarea
          ref={input}
          rows={1}
          value={text}
          placeholder={editing ? "Edit message…" : (placeholder ?? (encrypted ? "Encrypted message…" : "Message…"))}
          aria-label="Message"
          aria-autocomplete="list"
          aria-controls={open ? "composer-suggestions" : undefined}
          aria-activedescendant={open ? `suggestion-${sel}` : undefined}
          data-testid="composer-input"
          onChange={(e) => {
            setText(e.target.value);
            notifyTyping(e.target.value);
            updateTrigger(e.target.value, e.target.selectionStart);
          }}
          onSelect={(e) => {
            const el = e.currentTarget;
            if (trigger && (el.selectionStart < trigger.start || el.selectionStart > trigger.end + 1)) setTrigger(null);
          }}
          onBlur={() => setTrigger(null)}
          onKeyDown={onKeyDown}
          onPaste={(e) => {
            if (e.clipboardData.files.length) {
              e.preventDefault();
              addFiles(e.clipboardData.files);
            }
          }}
        />
        <button className={`icon-btn ${toolbar ? "on" : ""}`} aria-label="Formatting" aria-pressed={toolbar} title="Formatting" data-testid="toggle-formatting"
          onClick={() => {
            localStorage.setItem(TOOLBAR_KEY, toolbar ? "off" : "on");
            setToolbar(!toolbar);
          }}
        >
          <span className="aa" aria-hidden="true">Aa</span>
        </button>
        <button className="icon-btn" aria-label="Emoji" aria-expanded={!!picker} onClick={(e) => setPicker(picker ? null : e.currentTarget)} data-testid="emoji-button">
          <IconSmile />
        </button>
        <button className="icon-btn send" aria-label="Send" onClick={() => void submit()} disabled={!canSend || !!uploading} data-testid="send">
          <IconSend />
        </button>
      </div>
      {picker && (
        <EmojiPicker
          anchor={picker}
          label="Insert emoji"
          onPick={(u) => {
            setPicker(null);
            insertAtCaret(u);
          }}
          onClose={() => setPicker(null)}
        />
      )}
    </div>
  );
}

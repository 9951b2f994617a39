import { useEffect, useRef, useState, type KeyboardEvent } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import type { TimelineItem } from "../lib/timeline";
import { plainTextOf } from "../lib/timeline";
import { IconPaperclip, IconSend, IconX } from "./Icons";

interface Props {
  client: MatrixClient;
  room: Room;
  replyTo: TimelineItem | null;
  editing: TimelineItem | null;
  onCancel: () => void;
  onSend: (text: string) => Promise<void>;
  onFile: (file: File, progress: (f: number) => void) => Promise<void>;
}

const drafts = new Map<string, string>();

export function Composer({ client, room, replyTo, editing, onCancel, onSend, onFile }: Props) {
  const [text, setText] = useState(() => drafts.get(room.roomId) ?? "");
  const [uploading, setUploading] = useState<{ name: string; progress: number } | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const typingSent = useRef(0);
  const encrypted = room.hasEncryptionStateEvent();

  useEffect(() => {
    if (editing) setText(String(editing.content.body ?? ""));
    if (editing || replyTo) input.current?.focus();
  }, [editing, replyTo]);
  useEffect(() => {
    drafts.set(room.roomId, text);
    const el = input.current;
    if (el) {
      el.style.height = "auto";
      el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
    }
  }, [text, room.roomId]);

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

  async function submit() {
    const value = text.trim();
    if (!value) return;
    setText("");
    drafts.delete(room.roomId);
    typingSent.current = 0;
    client.sendTyping(room.roomId, false, 0).catch(() => {});
    try {
      await onSend(value);
    } catch {
      setText(value); // keep what they wrote if it couldn't be sent
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    } else if (e.key === "Escape" && (replyTo || editing)) {
      onCancel();
      if (editing) setText("");
    }
  }

  async function sendFiles(files: FileList | File[] | null) {
    for (const file of Array.from(files ?? [])) {
      setUploading({ name: file.name, progress: 0 });
      try {
        await onFile(file, (p) => setUploading({ name: file.name, progress: p }));
      } catch {
        /* error shown by the room view */
      } finally {
        setUploading(null);
      }
    }
  }

  return (
    <div
      className="composer"
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        void sendFiles(e.dataTransfer.files);
      }}
    >
      {(replyTo || editing) && (
        <div className="composer-context">
          <span className="ellipsis">
            {editing ? "Editing" : `Replying to ${room.getMember(replyTo!.sender)?.name ?? replyTo!.sender}`}
            <span className="muted"> · {plainTextOf(editing ?? replyTo!)}</span>
          </span>
          <button className="icon-btn sm" aria-label="Cancel" onClick={() => { onCancel(); if (editing) setText(""); }}>
            <IconX width={16} height={16} />
          </button>
        </div>
      )}
      {uploading && (
        <div className="upload-progress small">
          Uploading {uploading.name}{encrypted ? " (encrypted)" : ""}… {Math.round(uploading.progress * 100)}%
          <div className="bar"><div style={{ width: `${Math.round(uploading.progress * 100)}%` }} /></div>
        </div>
      )}
      <div className="composer-row">
        <button className="icon-btn" aria-label="Attach a file" onClick={() => fileInput.current?.click()} data-testid="attach">
          <IconPaperclip />
        </button>
        <input ref={fileInput} type="file" hidden multiple data-testid="file-input" onChange={(e) => { void sendFiles(e.target.files); e.target.value = ""; }} />
        <textarea
          ref={input}
          rows={1}
          value={text}
          placeholder={encrypted ? "Encrypted message…" : "Message…"}
          aria-label="Message"
          data-testid="composer-input"
          onChange={(e) => {
            setText(e.target.value);
            notifyTyping(e.target.value);
          }}
          onKeyDown={onKeyDown}
          onPaste={(e) => {
            if (e.clipboardData.files.length) {
              e.preventDefault();
              void sendFiles(e.clipboardData.files);
            }
          }}
        />
        <button className="icon-btn send" aria-label="Send" onClick={() => void submit()} disabled={!text.trim()} data-testid="send">
          <IconSend />
        </button>
      </div>
    </div>
  );
}

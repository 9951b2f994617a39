import { useState } from "react";
import { Dialog } from "./Dialog";

export function RecoveryKeyDialog({ reason, onDone }: { reason: string; onDone: (key: string | null) => void }) {
  const [key, setKey] = useState("");
  return (
    <Dialog title="Recovery key" onClose={() => onDone(null)}>
      <form className="stack" onSubmit={(e) => { e.preventDefault(); onDone(key.trim() || null); }}>
        <p>{reason}. It was shown when you set up secure backup.</p>
        <p className="muted small">Lost it? Cancel, then open Settings → Security &amp; backup → “Lost your recovery key?”.</p>
        <input autoFocus value={key} onChange={(e) => setKey(e.target.value)} placeholder="EsTc 1234 …" aria-label="Recovery key" autoComplete="off" />
        <div className="row gap end">
          <button type="button" className="btn btn-ghost" onClick={() => onDone(null)}>Cancel</button>
          <button className="btn btn-primary" disabled={!key.trim()}>Continue</button>
        </div>
      </form>
    </Dialog>
  );
}

import { useState } from "react";
import { Dialog } from "../Dialog";
import "./settings.css";

/** The text file the recovery key is saved as: the key, and what it is for. */
export function recoveryKeyFile(key: string, userId: string, now = new Date()): string {
  return [
    "WSPR recovery key",
    "",
    `Account: ${userId}`,
    `Created: ${now.toISOString().slice(0, 10)}`,
    "",
    key,
    "",
    "With this key you can read your encrypted messages on a new device and verify it.",
    "Keep it private, like a password: anyone who has it and your password can read your messages.",
    "",
  ].join("\n");
}

/**
 * Shows a new recovery key once. It can't be dismissed until the key has been downloaded or copied
 * and the person confirms they saved it: without the key, encrypted history is lost with the device.
 */
export function RecoveryKeySaver({ recoveryKey, userId, onDone }: { recoveryKey: string; userId: string; onDone: () => void }) {
  const [saved, setSaved] = useState<"downloaded" | "copied" | null>(null);
  const [confirmed, setConfirmed] = useState(false);
  const [copyFailed, setCopyFailed] = useState(false);

  function download() {
    const url = URL.createObjectURL(new Blob([recoveryKeyFile(recoveryKey, userId)], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = "wspr-recovery-key.txt";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    setSaved("downloaded");
  }

  async function copy() {
    try {
      await navigator.clipboard.writeText(recoveryKey);
      setSaved((s) => s ?? "copied");
      setCopyFailed(false);
    } catch {
      setCopyFailed(true); // no clipboard permission: the key is selectable, and there's the download
    }
  }

  return (
    <Dialog title="Save your recovery key" testId="recovery-key-saver">
      <div className="stack">
        <p>
          This key unlocks your encrypted messages on a new device. <strong>We can't show it again</strong>, and nobody can recover it for you.
        </p>
        <div className="recovery-key-box" data-testid="new-recovery-key">
          <code>{recoveryKey}</code>
          <div className="row gap wrap">
            <button className="btn btn-primary btn-sm" onClick={download} data-testid="recovery-key-download">
              Download as a file
            </button>
            <button className="btn btn-sm" onClick={() => void copy()} data-testid="recovery-key-copy">
              {saved === "copied" ? "Copied" : "Copy"}
            </button>
          </div>
          {copyFailed && <span className="small error-text">Couldn't copy. Select the key and copy it, or download it.</span>}
          {saved === "downloaded" && <span className="small muted" role="status">Saved as wspr-recovery-key.txt in your downloads.</span>}
        </div>
        <p className="muted small">Keep it in a password manager or another safe place, not only on this device.</p>
        <label className="check">
          <input type="checkbox" checked={confirmed} disabled={!saved} onChange={(e) => setConfirmed(e.target.checked)} data-testid="recovery-key-confirm" />
          {saved ? "I've saved my recovery key somewhere safe" : "Download or copy the key first"}
        </label>
        <div className="row end">
          <button className="btn btn-primary" disabled={!confirmed} onClick={onDone} data-testid="recovery-key-done">
            Done
          </button>
        </div>
      </div>
    </Dialog>
  );
}

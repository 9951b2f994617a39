import { useEffect, useState } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { canReplaceRecoveryKey, replaceRecoveryKey, resetRecovery } from "../../lib/security";
import { Dialog, ErrorText } from "../Dialog";
import { errorText } from "./errorText";

/**
 * "I lost my recovery key": what a reset costs, the cheaper way out (another signed-in device), and
 * the reset itself, which ends with a new key to save.
 */
export function LostRecoveryKey({ client, onClose, onReset, onVerifyInstead }: {
  client: MatrixClient;
  onClose: () => void;
  onReset: (newKey: string) => void;
  onVerifyInstead: () => void;
}) {
  const [understood, setUnderstood] = useState(false);
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // this device has every secret the old key protected: a new key costs nothing
  const [replaceable, setReplaceable] = useState(false);
  useEffect(() => {
    let alive = true;
    canReplaceRecoveryKey(client).then((ok) => alive && setReplaceable(ok), () => {});
    return () => {
      alive = false;
    };
  }, [client]);

  async function reset(how: "replace" | "reset") {
    setBusy(true);
    setError(null);
    try {
      onReset(how === "replace" ? await replaceRecoveryKey(client) : await resetRecovery(client, password));
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title="Lost your recovery key?" onClose={busy ? undefined : onClose} testId="lost-recovery-key">
      <div className="stack">
        {replaceable && (
          <div className="card-inner">
            <strong>Make a new recovery key</strong>
            <p className="muted small">This device holds everything your old key protected, so it can make a new key for the same backup. Nothing is lost, and the old key stops working.</p>
            <button className="btn btn-primary btn-sm" disabled={busy} onClick={() => void reset("replace")} data-testid="replace-recovery-key">
              Make a new recovery key
            </button>
          </div>
        )}
        {!replaceable && <div className="card-inner">
          <strong>Still signed in on another device?</strong>
          <p className="muted small">Verify this device from there instead. Nothing is lost that way.</p>
          <button className="btn btn-sm" disabled={busy} onClick={onVerifyInstead}>
            Verify with another device
          </button>
        </div>}
        <div className="card-inner reset-card">
          <strong>Reset your encryption</strong>
          <p className="small">This gives your account a new recovery key, a new key backup and a new identity. What it costs:</p>
          <ul className="small reset-costs">
            <li>
              <strong>Older encrypted messages you can't read here now stay unreadable</strong>, unless another device of yours still has their keys. The old backup is deleted.
            </li>
            <li>Messages this device can read stay readable and go into the new backup.</li>
            <li>People you've verified, and your other devices, will see that your identity changed and need to verify you again.</li>
          </ul>
          <label className="check small">
            <input type="checkbox" checked={understood} onChange={(e) => setUnderstood(e.target.checked)} data-testid="reset-understood" /> I understand. Reset my encryption.
          </label>
          <label className="field reset-password">
            <span>Your account password</span>
            <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} data-testid="reset-password" />
          </label>
          <button className="btn btn-danger" disabled={!understood || !password || busy} onClick={() => void reset("reset")} data-testid="reset-recovery">
            {busy ? "Resetting…" : "Reset and get a new recovery key"}
          </button>
        </div>
        <ErrorText error={error} />
      </div>
    </Dialog>
  );
}

import { useState, type FormEvent } from "react";
import { MatrixError, type AuthDict, type MatrixClient } from "matrix-js-sdk";
import { passwordAuth } from "../../lib/security";
import { loadSession } from "../../lib/auth";
import { accountLink, type OAuthSession } from "../../lib/oauth";
import { ErrorText } from "../Dialog";
import { errorText } from "./errorText";
import "./settings.css";

/** A wrong password in a UIA step: 401 with M_FORBIDDEN (Synapse and WSPR). */
function wrongPassword(e: unknown): boolean {
  return e instanceof MatrixError && e.httpStatus === 401 && e.errcode === "M_FORBIDDEN";
}

/** Settings → Account: change the password, deactivate the account. */
export function Account({ client, onDeactivated }: { client: MatrixClient; onDeactivated: () => void }) {
  // signed in through the server's OAuth 2.0 API: password, MFA, passkeys, email and sessions are
  // managed on its account pages, not with User-Interactive Auth from here
  const [oauth] = useState(() => loadSession()?.oauth);
  if (oauth) return <ManageAccount oauth={oauth} deviceId={client.getDeviceId()} />;
  return (
    <div className="stack" data-testid="account-tab">
      <ChangePassword client={client} />
      <Deactivate client={client} onDeactivated={onDeactivated} />
    </div>
  );
}

/** Links to the server's account pages (the metadata's account_management_uri and its actions). */
export function ManageAccount({ oauth, deviceId }: { oauth: OAuthSession; deviceId: string | null }) {
  const main = accountLink(oauth);
  const links = [
    { label: "Profile", href: accountLink(oauth, "org.matrix.profile") },
    { label: "Signed-in sessions", href: accountLink(oauth, "org.matrix.sessions_list") },
    { label: "This session", href: deviceId ? accountLink(oauth, "org.matrix.session_view", { device_id: deviceId }) : null },
  ].filter((l) => l.href && l.href !== main);
  return (
    <div className="stack" data-testid="account-tab">
      <h3 className="section-title">Your account</h3>
      <p className="muted small">
        You signed in on your server's own page. Your password, two-step sign-in (authenticator app, recovery codes), passkeys, email
        address and signed-in sessions are managed there.
      </p>
      {main ? (
        <>
          <a className="btn btn-primary" href={main} target="_blank" rel="noopener noreferrer" data-testid="manage-account">
            Manage account
          </a>
          {links.length > 0 && (
            <ul className="stack">
              {links.map((l) => (
                <li key={l.label}>
                  <a href={l.href ?? undefined} target="_blank" rel="noopener noreferrer">
                    {l.label}
                  </a>
                </li>
              ))}
            </ul>
          )}
        </>
      ) : (
        <p className="muted small">This server has no account page.</p>
      )}
    </div>
  );
}

function ChangePassword({ client }: { client: MatrixClient }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [signOutOthers, setSignOutOthers] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const mismatch = again.length > 0 && again !== next;

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (next !== again) return;
    setBusy(true);
    setError(null);
    setDone(false);
    try {
      await passwordAuth(client, () => Promise.resolve(current))(async (auth) => {
        await client.setPassword(auth as AuthDict, next, signOutOthers);
      });
      setDone(true);
      setCurrent("");
      setNext("");
      setAgain("");
    } catch (err) {
      setError(wrongPassword(err) ? "Your current password is wrong." : errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="stack" onSubmit={(e) => void submit(e)}>
      <h3 className="section-title">Change password</h3>
      <label className="field">
        <span>Current password</span>
        <input type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required data-testid="password-current" />
      </label>
      <div className="row gap wrap-fields">
        <label className="field grow">
          <span>New password</span>
          <input type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} required minLength={8} data-testid="password-new" />
        </label>
        <label className="field grow">
          <span>New password again</span>
          <input type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} required aria-invalid={mismatch} data-testid="password-again" />
        </label>
      </div>
      {mismatch && <span className="small error-text">The new passwords don't match.</span>}
      <label className="check small">
        <input type="checkbox" checked={signOutOthers} onChange={(e) => setSignOutOthers(e.target.checked)} /> Also sign out my other devices (they lose the keys they hold unless you've set up secure backup)
      </label>
      <ErrorText error={error} />
      {done && (
        <div className="alert alert-ok" role="status" data-testid="password-changed">
          Password changed.
        </div>
      )}
      <div className="row end">
        <button className="btn btn-primary" disabled={busy || mismatch || !current || !next} data-testid="password-submit">
          {busy ? "Changing…" : "Change password"}
        </button>
      </div>
    </form>
  );
}

function Deactivate({ client, onDeactivated }: { client: MatrixClient; onDeactivated: () => void }) {
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState("");
  const [erase, setErase] = useState(false);
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const me = client.getSafeUserId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await passwordAuth(client, () => Promise.resolve(password))(async (auth) => {
        await client.deactivateAccount(auth ?? undefined, erase);
      });
      onDeactivated();
    } catch (err) {
      setError(wrongPassword(err) ? "That password is wrong." : errorText(err));
      setBusy(false);
    }
  }

  if (!open) {
    return (
      <div className="row between danger-zone">
        <span className="muted small">Close this account for good.</span>
        <button className="btn btn-danger-ghost" onClick={() => setOpen(true)} data-testid="deactivate-open">
          Deactivate account
        </button>
      </div>
    );
  }
  return (
    <form className="stack card-inner danger-card" onSubmit={(e) => void submit(e)} data-testid="deactivate-form">
      <h3 className="section-title">Deactivate account</h3>
      <ul className="small reset-costs">
        <li>You can never sign in to {me} again, and nobody can take the name.</li>
        <li>You leave every room, and all your devices are signed out.</li>
        <li>Your encrypted history can't be read by anyone any more, including you.</li>
      </ul>
      <label className="check small">
        <input type="checkbox" checked={erase} onChange={(e) => setErase(e.target.checked)} /> Also hide my messages from people who join rooms later (where the server supports it)
      </label>
      <label className="field">
        <span>Your password</span>
        <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required data-testid="deactivate-password" />
      </label>
      <label className="field">
        <span>Type your user ID to confirm</span>
        <input value={typed} onChange={(e) => setTyped(e.target.value)} placeholder={me} autoComplete="off" data-testid="deactivate-confirm" />
      </label>
      <ErrorText error={error} />
      <div className="row end gap">
        <button type="button" className="btn btn-ghost" disabled={busy} onClick={() => setOpen(false)}>
          Cancel
        </button>
        <button className="btn btn-danger" disabled={busy || !password || typed.trim() !== me} data-testid="deactivate-submit">
          {busy ? "Deactivating…" : "Deactivate my account"}
        </button>
      </div>
    </form>
  );
}

import { useEffect, useState, type FormEvent } from "react";
import { passwordLogin, register, RegistrationNeedsInput, type Session } from "../lib/auth";
import { resolveHomeserver } from "../lib/discovery";
import { beginOAuth, chooseFlow, oauthMetadata, redirectUriFor, type LoginFlow } from "../lib/oauth";
import { describeError, formatWait, type FriendlyError } from "../lib/errors";
import { Logo } from "./Icons";

function defaultServer(): string {
  const remembered = localStorage.getItem("wspr.lastServer");
  if (remembered) return remembered;
  // served by a homeserver (WSPR serves this app at /): that's the obvious default
  if (typeof location !== "undefined" && /^https?:$/.test(location.protocol)) return location.origin;
  return "";
}

/** The server's way in: OAuth when it offers the API (asked once the address stops changing), else passwords. */
function useLoginFlow(server: string): { flow: LoginFlow | null; baseUrl: string | null } {
  const [found, setFound] = useState<{ server: string; baseUrl: string; flow: LoginFlow } | null>(null);
  useEffect(() => {
    if (!server.trim()) return;
    let cancelled = false;
    const t = setTimeout(() => {
      void (async () => {
        try {
          const baseUrl = await resolveHomeserver(server);
          const flow = chooseFlow(await oauthMetadata(baseUrl));
          if (!cancelled) setFound({ server, baseUrl, flow });
        } catch {
          /* not a server (yet): the form says so when it is sent */
        }
      })();
    }, 400);
    return () => {
      cancelled = true;
      clearTimeout(t);
    };
  }, [server]);
  return found?.server === server ? { flow: found.flow, baseUrl: found.baseUrl } : { flow: null, baseUrl: null };
}

export function Login({
  onSession,
  initialError = null,
  navigate = (url) => location.assign(url),
}: {
  onSession: (s: Session) => void;
  /** a failed OAuth sign-in, shown when the browser comes back */
  initialError?: FriendlyError | null;
  /** leaves for the server's sign-in page */
  navigate?: (url: string) => void;
}) {
  const [mode, setMode] = useState<"login" | "register">("login");
  const [server, setServer] = useState(defaultServer);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [token, setToken] = useState("");
  const [needToken, setNeedToken] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<FriendlyError | null>(initialError);
  const [waitUntil, setWaitUntil] = useState(0);
  const [now, setNow] = useState(() => Date.now());

  useEffect(() => {
    if (waitUntil <= Date.now()) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [waitUntil]);
  const waiting = waitUntil > now;
  const { flow } = useLoginFlow(server);
  const oauth = flow?.kind === "oauth";
  const serverHost = (() => {
    try {
      return new URL(flow?.kind === "oauth" ? flow.metadata.issuer : "").host;
    } catch {
      return server.trim();
    }
  })();

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    if (!oauth && mode === "register" && password !== confirm) {
      setError({ title: "Passwords don't match", detail: "Type the same password twice." });
      return;
    }
    setBusy(true);
    try {
      const baseUrl = await resolveHomeserver(server);
      localStorage.setItem("wspr.lastServer", server.trim());
      // the server's own sign-in pages when it offers the OAuth 2.0 API (asked again: the form may be
      // sent before the address was checked), else the password form
      const chosen = chooseFlow(await oauthMetadata(baseUrl));
      if (chosen.kind === "oauth") {
        navigate(await beginOAuth(baseUrl, chosen.metadata, { register: mode === "register", redirectUri: redirectUriFor(location) }));
        return; // leaving the page: stay busy
      }
      const session =
        mode === "login" ? await passwordLogin(baseUrl, username, password) : await register(baseUrl, username, password, token || undefined);
      onSession(session);
      setBusy(false);
    } catch (err) {
      if (err instanceof RegistrationNeedsInput) {
        if (err.needs.kind === "token") {
          setNeedToken(true);
          setError({ title: "This server needs a registration token", detail: "Ask the server's admin for one and enter it below." });
        } else {
          setError({
            title: "This server's sign-up needs steps WSPR can't do yet",
            detail: `It asks for: ${err.needs.stages.join(", ")}. Create the account another way, then sign in here.`,
          });
        }
      } else {
        const f = describeError(err, mode);
        setError(f);
        if (f.retryAfterMs) {
          setWaitUntil(Date.now() + f.retryAfterMs);
          setNow(Date.now());
        }
      }
      setBusy(false);
    }
  }

  return (
    <div className="login-page">
      <form className="card login-card" onSubmit={submit} aria-label={mode === "login" ? "Sign in" : "Create account"}>
        <div className="login-brand">
          <Logo size={48} />
          <div>
            <h1>WSPR</h1>
            <p className="muted">Private, end-to-end encrypted chat on any Matrix server</p>
          </div>
        </div>
        <div className="segmented" role="tablist">
          <button type="button" role="tab" aria-selected={mode === "login"} className={mode === "login" ? "on" : ""} onClick={() => { setMode("login"); setError(null); }}>
            Sign in
          </button>
          <button type="button" role="tab" aria-selected={mode === "register"} className={mode === "register" ? "on" : ""} onClick={() => { setMode("register"); setError(null); }}>
            Create account
          </button>
        </div>
        <label className="field">
          <span>Homeserver</span>
          <input name="homeserver" value={server} onChange={(e) => setServer(e.target.value)} placeholder="example.org or https://matrix.example.org" autoComplete="url" required inputMode="url" />
        </label>
        {oauth && (
          <p className="muted small" data-testid="oauth-note">
            {mode === "login" ? "You'll sign in" : "You'll create your account"} on {serverHost}'s own page (where your password, passkeys and
            two-step sign-in live), then come back here.
          </p>
        )}
        {!oauth && (
        <>
        <label className="field">
          <span>Username</span>
          <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} placeholder="alice" autoComplete="username" autoCapitalize="none" required />
        </label>
        <label className="field">
          <span>Password</span>
          <input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete={mode === "login" ? "current-password" : "new-password"} required />
        </label>
        {mode === "register" && (
          <label className="field">
            <span>Confirm password</span>
            <input name="confirm" type="password" value={confirm} onChange={(e) => setConfirm(e.target.value)} autoComplete="new-password" required />
          </label>
        )}
        </>
        )}
        {!oauth && mode === "register" && needToken && (
          <label className="field">
            <span>Registration token</span>
            <input name="token" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" required />
          </label>
        )}
        {error && (
          <div className="alert alert-error" role="alert">
            <strong>{error.title}</strong>
            {error.detail && <div>{waiting ? `Try again in ${formatWait(waitUntil - now)}.` : error.detail}</div>}
          </div>
        )}
        <button className="btn btn-primary btn-block" type="submit" disabled={busy || waiting}>
          {busy ? "Connecting…" : waiting ? `Wait ${formatWait(waitUntil - now)}` : mode === "login" ? "Sign in" : "Create account"}
        </button>
        <p className="muted small center">Your messages are encrypted on this device before they leave it.</p>
      </form>
    </div>
  );
}

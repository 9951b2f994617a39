import { useCallback, useEffect, useState } from "react";
import { HttpApiEvent, type MatrixClient } from "matrix-js-sdk";
import { clearSession, loadSession, saveSession, type Session } from "./lib/auth";
import { startSession, stopSession } from "./lib/client";
import { describeError, type FriendlyError } from "./lib/errors";
import { callbackParams, completeOAuth, OAuthCallbackError } from "./lib/oauth";
import { useOnline } from "./lib/hooks";
import { Login } from "./components/Login";
import { Chat } from "./components/Chat";
import { Logo } from "./components/Icons";

/** One code exchange per state, also when an effect runs twice (React's StrictMode). */
const completions = new Map<string, ReturnType<typeof completeOAuth>>();
function completeOnce(params: NonNullable<ReturnType<typeof callbackParams>>) {
  let p = completions.get(params.state);
  if (!p) completions.set(params.state, (p = completeOAuth(params)));
  return p;
}

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [client, setClient] = useState<MatrixClient | null>(null);
  const [startError, setStartError] = useState<string | null>(null);
  const online = useOnline();
  // back from the server's OAuth sign-in page with ?code=…&state=…
  const [callback] = useState(() => (session ? null : callbackParams(location.search)));
  const [oauthError, setOauthError] = useState<FriendlyError | null>(null);
  const [completing, setCompleting] = useState(callback !== null);

  useEffect(() => {
    if (!callback) return;
    let cancelled = false;
    // the code and state are used once: out of the address bar (and history) at once
    history.replaceState(null, "", location.pathname + location.hash);
    completeOnce(callback).then(
      (s) => {
        if (cancelled) return;
        saveSession(s);
        setSession(s);
        setCompleting(false);
      },
      (e) => {
        if (cancelled) return;
        setOauthError(e instanceof OAuthCallbackError ? { title: "Couldn't sign in", detail: e.message } : describeError(e));
        setCompleting(false);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [callback]);

  useEffect(() => {
    if (!session || client) return;
    let cancelled = false;
    startSession(session).then(
      (c) => {
        if (cancelled) return;
        c.on(HttpApiEvent.SessionLoggedOut, () => {
          // signed out elsewhere (or the token was revoked): this device's keys are useless now
          void stopSession({ logout: true }).finally(() => {
            clearSession();
            location.replace("/");
          });
        });
        setClient(c);
      },
      (e) => !cancelled && setStartError(describeError(e).title + ": " + (describeError(e).detail ?? "")),
    );
    return () => {
      cancelled = true;
    };
  }, [session, client]);

  const onSession = useCallback((s: Session) => {
    saveSession(s);
    setSession(s);
  }, []);

  const logout = useCallback(async () => {
    await stopSession({ logout: true });
    clearSession();
    // start from a clean page: no SDK state, keys or caches of the old session survive in memory
    location.replace("/");
  }, []);

  if (completing) {
    return (
      <div className="splash" data-testid="splash">
        <Logo size={64} />
        <p className="muted" data-testid="splash-status">Signing in…</p>
      </div>
    );
  }
  if (!session) return <Login onSession={onSession} initialError={oauthError} />;
  if (!client) {
    return (
      <div className="splash" data-testid="splash">
        <Logo size={64} />
        {startError ? (
          <div className="alert alert-error" role="alert">
            <strong>Couldn't start</strong>
            <div>{startError}</div>
            <div className="row gap">
              <button className="btn" onClick={() => location.reload()}>Retry</button>
              <button className="btn btn-ghost" onClick={logout}>Sign out</button>
            </div>
          </div>
        ) : (
          <p className="muted" data-testid="splash-status">
            {online ? "Unlocking your messages…" : "You're offline. WSPR will open as soon as you're back online."}
          </p>
        )}
      </div>
    );
  }
  return <Chat client={client} onLogout={logout} />;
}

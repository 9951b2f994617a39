import { useCallback, useEffect, useState } from "react";
import { HttpApiEvent, type MatrixClient } from "matrix-js-sdk";
import { clearSession, loadSession, saveSession, type Session } from "./lib/auth";
import { startSession, stopSession } from "./lib/client";
import { describeError } from "./lib/errors";
import { Login } from "./components/Login";
import { Chat } from "./components/Chat";
import { Logo } from "./components/Icons";

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [client, setClient] = useState<MatrixClient | null>(null);
  const [startError, setStartError] = useState<string | null>(null);
  const [online, setOnline] = useState(() => navigator.onLine);
  useEffect(() => {
    const up = () => setOnline(true);
    const down = () => setOnline(false);
    window.addEventListener("online", up);
    window.addEventListener("offline", down);
    return () => {
      window.removeEventListener("online", up);
      window.removeEventListener("offline", down);
    };
  }, []);

  useEffect(() => {
    if (!session || client) return;
    let cancelled = false;
    setStartError(null);
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

  if (!session) return <Login onSession={onSession} />;
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

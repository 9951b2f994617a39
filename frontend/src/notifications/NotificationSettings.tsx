// Settings → Notifications: desktop notifications on this device, Web Push (when the app is closed),
// and keywords (content push rules, as Element keeps them).
import { useEffect, useState, type FormEvent } from "react";
import { ClientEvent, PushRuleActionName, PushRuleKind, TweakName, type MatrixClient } from "matrix-js-sdk";
import { useEvents } from "../lib/hooks";
import { describeError } from "../lib/errors";
import { desktopNotificationsWanted, notificationPermission, setDesktopNotificationsWanted } from "./desktop";
import { disableWebPush, enableWebPush, fetchWebPushInfo, webPushPusher, webPushSupported, type WebPushInfo } from "./webPush";
import "./notifications.css";

function errText(e: unknown): string {
  if (e instanceof Error && !("errcode" in e) && !("httpStatus" in e)) return e.message;
  const f = describeError(e);
  return `${f.title}${f.detail ? `. ${f.detail}` : ""}`;
}

export function NotificationSettings({ client }: { client: MatrixClient }) {
  useEvents(client, [ClientEvent.AccountData]);
  const [permission, setPermission] = useState(notificationPermission);
  const [desktop, setDesktop] = useState(desktopNotificationsWanted);
  const [info, setInfo] = useState<WebPushInfo | null | undefined>(undefined);
  const [push, setPush] = useState(() => !!webPushPusher(client.getSafeUserId()));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [keyword, setKeyword] = useState("");

  useEffect(() => {
    let alive = true;
    void fetchWebPushInfo(client).then((i) => alive && setInfo(i));
    return () => {
      alive = false;
    };
  }, [client]);

  async function run(fn: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(errText(e));
    } finally {
      setBusy(false);
      setPermission(notificationPermission());
    }
  }

  const keywords = (client.pushRules?.global?.content ?? []).filter((r) => !r.default && r.pattern);
  function addKeyword(e: FormEvent) {
    e.preventDefault();
    const k = keyword.trim();
    if (!k) return;
    void run(async () => {
      await client.addPushRule("global", PushRuleKind.ContentSpecific, k, {
        pattern: k,
        actions: [PushRuleActionName.Notify, { set_tweak: TweakName.Sound, value: "default" }, { set_tweak: TweakName.Highlight, value: false }],
      });
      setKeyword("");
    });
  }

  const deviceName = `WSPR on ${/Android/i.test(navigator.userAgent) ? "Android" : /iPhone|iPad/i.test(navigator.userAgent) ? "iOS" : /Mac/i.test(navigator.userAgent) ? "macOS" : /Windows/i.test(navigator.userAgent) ? "Windows" : "Linux"}`;
  return (
    <div className="stack" data-testid="notifications-tab">
      <div>
        <div className="setting-row">
          <div>
            <strong>Desktop notifications</strong>
            <span className="muted small">
              {permission === "unsupported"
                ? "This browser can't show notifications."
                : permission === "denied"
                  ? "Blocked in the browser's site settings for this address."
                  : "New messages while WSPR is open, except in the room you're reading."}
            </span>
          </div>
          {permission === "default" ? (
            <button className="btn btn-primary btn-sm" disabled={busy} onClick={() => void run(() => Notification.requestPermission())} data-testid="enable-desktop-notifications">Enable</button>
          ) : permission === "granted" ? (
            <label className="check">
              <input type="checkbox" checked={desktop} onChange={(e) => { setDesktopNotificationsWanted(e.target.checked); setDesktop(e.target.checked); }} data-testid="desktop-notifications" />
              On this device
            </label>
          ) : null}
        </div>
        <div className="setting-row">
          <div>
            <strong>When WSPR is closed</strong>
            <span className="muted small">
              {!webPushSupported()
                ? "This browser has no Web Push."
                : info === undefined
                  ? "Checking what your homeserver offers…"
                  : info === null
                    ? "Your homeserver doesn't offer Web Push (WSPR's push gateway)."
                    : "Web Push through your homeserver. Encrypted messages show as “New message”: the server can't read them."}
            </span>
          </div>
          {webPushSupported() && info && (
            <label className="check">
              <input type="checkbox" checked={push} disabled={busy || permission === "denied"} data-testid="web-push"
                onChange={(e) => {
                  const on = e.target.checked;
                  void run(async () => {
                    if (on) await enableWebPush(client, info, deviceName);
                    else await disableWebPush(client);
                    setPush(on);
                  });
                }}
              />
              On this device
            </label>
          )}
        </div>
      </div>
      <div className="stack tight">
        <h3 className="section-title">Keywords</h3>
        <span className="muted small">Messages containing these words notify you like a mention, also in rooms set to “Mentions and keywords”.</span>
        {keywords.length > 0 && (
          <div className="keyword-list">
            {keywords.map((r) => (
              <span key={r.rule_id} className="keyword-chip" data-testid="keyword">
                {r.pattern}
                <button className="icon-btn sm" aria-label={`Remove ${r.pattern}`} disabled={busy} onClick={() => void run(() => client.deletePushRule("global", PushRuleKind.ContentSpecific, r.rule_id))}>×</button>
              </span>
            ))}
          </div>
        )}
        <form className="row gap invite-row" onSubmit={addKeyword}>
          <input value={keyword} onChange={(e) => setKeyword(e.target.value)} placeholder="Add a keyword" aria-label="Add a keyword" data-testid="keyword-input" />
          <button className="btn" disabled={busy || !keyword.trim()}>Add</button>
        </form>
      </div>
      {error && <div className="alert alert-error" role="alert">{error}</div>}
    </div>
  );
}

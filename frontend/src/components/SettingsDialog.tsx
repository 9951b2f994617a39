import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import type { IMyDevice, MatrixClient } from "matrix-js-sdk";
import { CryptoEvent, type VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { describeError } from "../lib/errors";
import { getSecurityStatus, passwordAuth, restoreWithRecoveryKey, setUpRecovery, type SecurityStatus } from "../lib/security";
import { RecoveryKeySaver } from "./settings/RecoveryKeySaver";
import { LostRecoveryKey } from "./settings/LostRecoveryKey";
import { Appearance } from "./settings/Appearance";
import { Account } from "./settings/Account";
import { Dialog, ErrorText } from "./Dialog";
import { Avatar } from "./Avatar";
import { IconShieldAlert, IconShieldCheck } from "./Icons";
import { NotificationSettings } from "../notifications/NotificationSettings";

export type SettingsTab = "profile" | "account" | "security" | "devices" | "notifications" | "appearance";
const TAB_LABELS: Record<SettingsTab, string> = { profile: "Profile", account: "Account", security: "Security & backup", devices: "Devices", notifications: "Notifications", appearance: "Appearance" };

function errText(e: unknown): string {
  // our own errors say it plainly; the server's and the network's get describeError's words
  if (e instanceof Error && !("errcode" in e) && !("httpStatus" in e)) return e.message;
  const f = describeError(e);
  return `${f.title}${f.detail ? `. ${f.detail}` : ""}`;
}

function askPassword(): Promise<string | null> {
  return Promise.resolve(window.prompt("Confirm with your account password") || null);
}

export function SettingsDialog({ client, initialTab, onClose, onLogout, onVerify }: { client: MatrixClient; initialTab: SettingsTab; onClose: () => void; onLogout: () => void; onVerify: (r: VerificationRequest) => void }) {
  const [tab, setTab] = useState<SettingsTab>(initialTab);
  // a new recovery key on screen: the dialog stays until it has been saved
  const [locked, setLocked] = useState(false);
  return (
    <Dialog title="Settings" onClose={locked ? undefined : onClose} wide testId="settings-dialog">
      <div className="segmented settings-tabs" role="tablist">
        {(["profile", "account", "security", "devices", "notifications", "appearance"] as SettingsTab[]).map((t) => (
          <button key={t} className={tab === t ? "on" : ""} onClick={() => setTab(t)} role="tab" aria-selected={tab === t}>
            {TAB_LABELS[t]}
          </button>
        ))}
      </div>
      {tab === "profile" && <Profile client={client} onLogout={onLogout} />}
      {tab === "account" && <Account client={client} onDeactivated={onLogout} />}
      {tab === "security" && <Security client={client} onLock={setLocked} onVerify={(r) => { onVerify(r); onClose(); }} />}
      {tab === "appearance" && <Appearance />}
      {tab === "notifications" && <NotificationSettings client={client} />}
      {tab === "devices" && <Devices client={client} onVerify={(r) => { onVerify(r); onClose(); }} />}
    </Dialog>
  );
}

function Profile({ client, onLogout }: { client: MatrixClient; onLogout: () => void }) {
  const me = client.getUser(client.getSafeUserId());
  const [name, setName] = useState(me?.displayName ?? "");
  const [avatar, setAvatar] = useState(me?.avatarUrl ?? null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [ok, setOk] = useState<string | null>(null);
  const file = useRef<HTMLInputElement>(null);

  useEffect(() => {
    client.getProfileInfo(client.getSafeUserId()).then((p) => {
      if (p.displayname) setName(p.displayname);
      if (p.avatar_url) setAvatar(p.avatar_url);
    }, () => {});
  }, [client]);

  async function run(fn: () => Promise<unknown>, msg: string) {
    setBusy(true);
    setError(null);
    setOk(null);
    try {
      await fn();
      setOk(msg);
    } catch (e) {
      setError(errText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="stack">
      <div className="row gap profile-row">
        <Avatar client={client} id={client.getSafeUserId()} name={name || client.getSafeUserId()} mxc={avatar} size={72} />
        <div className="stack tight">
          <strong>{client.getSafeUserId()}</strong>
          <span className="muted small">Device {client.getDeviceId()}</span>
          <button className="btn btn-sm" onClick={() => file.current?.click()} disabled={busy}>Change picture</button>
          <input
            ref={file}
            type="file"
            accept="image/*"
            hidden
            onChange={(e) => {
              const f = e.target.files?.[0];
              if (f)
                void run(async () => {
                  const { content_uri } = await client.uploadContent(f, { type: f.type });
                  await client.setAvatarUrl(content_uri);
                  setAvatar(content_uri);
                }, "Picture updated");
            }}
          />
        </div>
      </div>
      <form
        className="row gap"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void run(() => client.setDisplayName(name.trim()), "Display name saved");
        }}
      >
        <label className="field grow">
          <span>Display name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} data-testid="display-name" />
        </label>
        <button className="btn btn-primary align-end" disabled={busy}>Save</button>
      </form>
      <ErrorText error={error} />
      {ok && <div className="alert alert-ok">{ok}</div>}
      <div className="row between danger-zone">
        <span className="muted small">Signing out removes this device's keys. Set up secure backup first to keep your history.</span>
        <button className="btn btn-danger" onClick={onLogout} data-testid="logout">Sign out</button>
      </div>
    </div>
  );
}

function Security({ client, onVerify, onLock }: { client: MatrixClient; onVerify: (r: VerificationRequest) => void; onLock: (locked: boolean) => void }) {
  const [status, setStatus] = useState<SecurityStatus | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [newKey, setNewKey] = useState<string | null>(null);
  const [recoveryKey, setRecoveryKey] = useState("");
  const [restored, setRestored] = useState<string | null>(null);
  const [lost, setLost] = useState(false);
  const showKey = (key: string) => {
    setNewKey(key);
    onLock(true);
  };

  const refresh = useCallback(() => getSecurityStatus(client).then(setStatus, (e) => setError(errText(e))), [client]);
  useEffect(() => {
    void refresh();
    // trust changes arrive asynchronously (key queries, signatures from other devices)
    const events = [CryptoEvent.UserTrustStatusChanged, CryptoEvent.KeysChanged, CryptoEvent.DevicesUpdated, CryptoEvent.KeyBackupStatus];
    const on = () => void refresh();
    for (const e of events) client.on(e as never, on as never);
    const timer = setInterval(on, 5000);
    return () => {
      clearInterval(timer);
      for (const e of events) client.off(e as never, on as never);
    };
  }, [client, refresh]);

  async function run(fn: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(errText(e));
    } finally {
      setBusy(false);
      void refresh();
    }
  }

  if (!status) return <p className="muted">Checking…</p>;
  const needsSetup = !status.accountHasCrossSigning || !status.backupVersion;
  return (
    <div className="stack" data-testid="security-tab">
      <ul className="status-list">
        <li className={status.thisDeviceVerified ? "ok" : "warn"}>
          {status.thisDeviceVerified ? <IconShieldCheck /> : <IconShieldAlert />} This device is {status.thisDeviceVerified ? "verified" : "not verified"}
        </li>
        <li className={status.crossSigningReady ? "ok" : "warn"}>
          {status.crossSigningReady ? <IconShieldCheck /> : <IconShieldAlert />} Cross-signing {status.crossSigningReady ? "ready" : status.accountHasCrossSigning ? "set up, not yet trusted here" : "not set up"}
        </li>
        <li className={status.backupActive ? "ok" : "warn"}>
          {status.backupActive ? <IconShieldCheck /> : <IconShieldAlert />} Key backup {status.backupActive ? `on (version ${status.backupVersion})` : status.backupVersion ? "exists, not connected on this device" : "off"}
        </li>
      </ul>
      {newKey && (
        <RecoveryKeySaver
          recoveryKey={newKey}
          userId={client.getSafeUserId()}
          onDone={() => {
            setNewKey(null);
            onLock(false);
          }}
        />
      )}
      {lost && (
        <LostRecoveryKey
          client={client}
          onClose={() => setLost(false)}
          onReset={(key) => {
            setLost(false);
            setRestored(null);
            showKey(key);
            void refresh();
          }}
          onVerifyInstead={() => {
            setLost(false);
            void run(async () => onVerify(await client.getCrypto()!.requestOwnUserVerification()));
          }}
        />
      )}
      {needsSetup && !newKey && (
        <div className="card-inner">
          <strong>Set up secure backup</strong>
          <p className="muted small">Creates your cross-signing identity and an encrypted backup of your message keys, unlocked by a recovery key only you have.</p>
          <button className="btn btn-primary" disabled={busy} data-testid="setup-recovery" onClick={() => run(async () => showKey(await setUpRecovery(client, askPassword)))}>
            {busy ? "Setting up…" : "Set up"}
          </button>
        </div>
      )}
      {!needsSetup && (!status.thisDeviceVerified || !status.backupActive) && (
        <form
          className="card-inner stack"
          onSubmit={(e) => {
            e.preventDefault();
            void run(async () => {
              const r = await restoreWithRecoveryKey(client, recoveryKey);
              setRestored(`Done. Restored ${r.imported} of ${r.total} message keys.`);
              setRecoveryKey("");
            });
          }}
        >
          <strong>Restore your history</strong>
          <p className="muted small">Enter your recovery key to verify this device and decrypt older messages.</p>
          <input value={recoveryKey} onChange={(e) => setRecoveryKey(e.target.value)} placeholder="EsTc 1234 …" aria-label="Recovery key" data-testid="recovery-key-input" autoComplete="off" />
          <div className="row gap">
            <button className="btn btn-primary" disabled={busy || !recoveryKey.trim()} data-testid="restore-submit">{busy ? "Restoring…" : "Restore"}</button>
            <button type="button" className="btn" disabled={busy} onClick={() => run(async () => onVerify(await client.getCrypto()!.requestOwnUserVerification()))}>
              Verify with another device instead
            </button>
          </div>
          <button type="button" className="link small" disabled={busy} onClick={() => setLost(true)} data-testid="lost-recovery-key-open">
            Lost your recovery key?
          </button>
        </form>
      )}
      {!needsSetup && status.thisDeviceVerified && status.backupActive && !newKey && (
        <button type="button" className="link small link-btn" onClick={() => setLost(true)} data-testid="lost-recovery-key-open">
          Lost your recovery key?
        </button>
      )}
      {restored && <div className="alert alert-ok" data-testid="restore-result">{restored}</div>}
      <ErrorText error={error} />
    </div>
  );
}

/** This account's devices with their verification state, this one first, then by last seen. */
async function listDevices(client: MatrixClient, me: string): Promise<(IMyDevice & { verified?: boolean })[]> {
  const { devices } = await client.getDevices();
  const crypto = client.getCrypto();
  const withStatus = await Promise.all(devices.map(async (d) => ({ ...d, verified: !!(await crypto?.getDeviceVerificationStatus(me, d.device_id))?.isVerified() })));
  const mine = client.getDeviceId();
  return withStatus.sort((a, b) => (a.device_id === mine ? -1 : b.device_id === mine ? 1 : (b.last_seen_ts ?? 0) - (a.last_seen_ts ?? 0)));
}

function Devices({ client, onVerify }: { client: MatrixClient; onVerify: (r: VerificationRequest) => void }) {
  const [devices, setDevices] = useState<(IMyDevice & { verified?: boolean })[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const me = client.getSafeUserId();

  const load = useCallback(() => {
    return listDevices(client, me).then(setDevices, (e: unknown) => setError(errText(e)));
  }, [client, me]);
  useEffect(() => {
    let alive = true;
    listDevices(client, me).then(
      (d) => alive && setDevices(d),
      (e: unknown) => alive && setError(errText(e)),
    );
    return () => {
      alive = false;
    };
  }, [client, me]);

  async function signOut(ids: string[]) {
    if (!confirm(ids.length === 1 ? "Sign out this device?" : `Sign out ${ids.length} devices?`)) return;
    setBusy(true);
    setError(null);
    try {
      await passwordAuth(client, askPassword)(async (auth) => void (await client.deleteMultipleDevices(ids, auth ?? undefined)));
      await load();
    } catch (e) {
      setError(errText(e));
    } finally {
      setBusy(false);
    }
  }

  if (!devices) return <p className="muted">Loading devices…</p>;
  const others = devices.filter((d) => d.device_id !== client.getDeviceId());
  return (
    <div className="stack" data-testid="devices-tab">
      <ul className="device-list">
        {devices.map((d) => {
          const current = d.device_id === client.getDeviceId();
          return (
            <li key={d.device_id}>
              <span className={`device-shield ${d.verified ? "ok" : "warn"}`} title={d.verified ? "Verified" : "Not verified"}>
                {d.verified ? <IconShieldCheck width={18} height={18} /> : <IconShieldAlert width={18} height={18} />}
              </span>
              <div className="grow stack tight">
                <strong>{d.display_name || d.device_id}{current && <span className="pill">This device</span>}</strong>
                <span className="muted small">
                  {d.device_id}
                  {d.last_seen_ts ? ` · last seen ${new Date(d.last_seen_ts).toLocaleString()}` : ""}
                  {d.last_seen_ip ? ` · ${d.last_seen_ip}` : ""}
                </span>
              </div>
              {!current && !d.verified && (
                <button className="btn btn-sm" disabled={busy} onClick={async () => onVerify(await client.getCrypto()!.requestDeviceVerification(me, d.device_id))}>
                  Verify
                </button>
              )}
              {!current && (
                <button className="btn btn-sm btn-danger-ghost" disabled={busy} onClick={() => signOut([d.device_id])}>
                  Sign out
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {others.length > 1 && (
        <button className="btn btn-danger-ghost" disabled={busy} onClick={() => signOut(others.map((d) => d.device_id))}>
          Sign out all other devices
        </button>
      )}
      <ErrorText error={error} />
    </div>
  );
}

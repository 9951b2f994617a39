import { useEffect, useState } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { CryptoEvent } from "matrix-js-sdk/lib/crypto-api/index.js";
import { getSecurityStatus, type SecurityStatus } from "../lib/security";
import { IconShieldAlert, IconX } from "./Icons";

/** Nudges towards secure backup (new account) or restoring history (new login on an account that has it). */
export function EncryptionBanner({ client, onOpenSecurity }: { client: MatrixClient; onOpenSecurity: () => void }) {
  const [status, setStatus] = useState<SecurityStatus | null>(null);
  const dismissKey = `wspr.bannerDismissed.${client.getDeviceId()}`;
  const [dismissed, setDismissed] = useState(() => localStorage.getItem(dismissKey) === "1");
  useEffect(() => {
    let alive = true;
    const refresh = () => getSecurityStatus(client).then((s) => alive && setStatus(s), () => {});
    const t = setTimeout(refresh, 1500);
    const events = [CryptoEvent.KeyBackupStatus, CryptoEvent.UserTrustStatusChanged, CryptoEvent.KeysChanged, CryptoEvent.DevicesUpdated];
    for (const e of events) client.on(e as never, refresh as never);
    return () => {
      alive = false;
      clearTimeout(t);
      for (const e of events) client.off(e as never, refresh as never);
    };
  }, [client]);
  if (!status || dismissed) return null;
  let text: string | null = null;
  let action = "";
  if (!status.accountHasCrossSigning || !status.backupVersion) {
    text = "Set up secure backup so you never lose access to your encrypted messages.";
    action = "Set up";
  } else if (!status.thisDeviceVerified) {
    text = "Verify this device to read your message history and be trusted by others.";
    action = "Verify";
  }
  if (!text) return null;
  return (
    <div className="banner" data-testid="encryption-banner">
      <IconShieldAlert width={18} height={18} />
      <span className="grow small">{text}</span>
      <button className="btn btn-sm btn-primary" onClick={onOpenSecurity}>{action}</button>
      <button className="icon-btn sm" aria-label="Dismiss" onClick={() => { localStorage.setItem(dismissKey, "1"); setDismissed(true); }}>
        <IconX width={14} height={14} />
      </button>
    </div>
  );
}

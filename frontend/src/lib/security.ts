import type { MatrixClient } from "matrix-js-sdk";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/index.js";
import { rememberSecretStorageKey } from "./client";

type MakeRequest = (auth: Record<string, unknown> | null) => Promise<unknown>;

/** A UIA callback that tries without auth first, then with the account password. */
export function passwordAuth(client: MatrixClient, password: () => Promise<string | null>) {
  return async (makeRequest: MakeRequest): Promise<void> => {
    try {
      await makeRequest(null);
      return;
    } catch (e: any) {
      const session = e?.data?.session;
      const flows: { stages: string[] }[] = e?.data?.flows ?? [];
      if (e?.httpStatus !== 401 || !flows.some((f) => f.stages.includes("m.login.password"))) throw e;
      const pw = await password();
      if (!pw) throw new Error("Cancelled");
      await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: client.getSafeUserId() }, password: pw, session });
    }
  };
}

export interface SecurityStatus {
  crossSigningReady: boolean;
  /** the account already has cross-signing keys (set up from another device) */
  accountHasCrossSigning: boolean;
  secretStorageReady: boolean;
  backupVersion: string | null;
  backupActive: boolean;
  thisDeviceVerified: boolean;
}

export async function getSecurityStatus(client: MatrixClient): Promise<SecurityStatus> {
  const crypto = client.getCrypto();
  if (!crypto) return { crossSigningReady: false, accountHasCrossSigning: false, secretStorageReady: false, backupVersion: null, backupActive: false, thisDeviceVerified: false };
  const [crossSigningReady, accountHasCrossSigning, secretStorageReady, backupInfo, active, deviceStatus] = await Promise.all([
    crypto.isCrossSigningReady(),
    crypto.userHasCrossSigningKeys(client.getSafeUserId(), true),
    crypto.isSecretStorageReady(),
    crypto.getKeyBackupInfo().catch(() => null),
    crypto.getActiveSessionBackupVersion(),
    crypto.getDeviceVerificationStatus(client.getSafeUserId(), client.getDeviceId()!),
  ]);
  return {
    crossSigningReady,
    accountHasCrossSigning,
    secretStorageReady,
    backupVersion: backupInfo?.version ?? null,
    backupActive: !!active,
    thisDeviceVerified: !!deviceStatus?.crossSigningVerified,
  };
}

/** Sets up cross-signing, secret storage and key backup; returns the recovery key to show the user once. */
export async function setUpRecovery(client: MatrixClient, password: () => Promise<string | null>): Promise<string> {
  const crypto = client.getCrypto()!;
  await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(client, password) as never });
  const key = await crypto.createRecoveryKeyFromPassphrase();
  await crypto.bootstrapSecretStorage({
    createSecretStorageKey: async () => key,
    setupNewSecretStorage: true,
    setupNewKeyBackup: true,
  });
  return key.encodedPrivateKey!;
}

/** On a new login: unlock secret storage with the recovery key, verify this device and restore history. */
export async function restoreWithRecoveryKey(client: MatrixClient, recoveryKey: string): Promise<{ imported: number; total: number }> {
  const crypto = client.getCrypto()!;
  let key: Uint8Array<ArrayBuffer>;
  try {
    key = decodeRecoveryKey(recoveryKey.trim());
  } catch {
    throw new Error("That doesn't look like a recovery key. It's 48 letters and numbers in groups of four.");
  }
  const keyId = await client.secretStorage.getDefaultKeyId();
  if (!keyId) throw new Error("This account has no secure backup yet. Set it up from a device that has your messages.");
  const found = await client.secretStorage.getKey(keyId);
  if (!found || !(await client.secretStorage.checkKey(key, found[1]))) throw new Error("That recovery key doesn't match this account's backup.");
  rememberSecretStorageKey(keyId, key);
  // imports the cross-signing keys from secret storage and signs this device with them
  await crypto.bootstrapCrossSigning({});
  await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
  await crypto.checkKeyBackupAndEnable();
  const result = await crypto.restoreKeyBackup();
  return { imported: result.imported, total: result.total };
}

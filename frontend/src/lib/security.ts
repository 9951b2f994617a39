import { MatrixError, type IAuthData, type MatrixClient, type UIAuthCallback } from "matrix-js-sdk";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/index.js";
import { rememberSecretStorageKey } from "./client";

/** A UIA callback that tries without auth first, then with the account password. */
export function passwordAuth(client: MatrixClient, password: () => Promise<string | null>): UIAuthCallback<void> {
  return async (makeRequest) => {
    try {
      await makeRequest(null);
      return;
    } catch (e) {
      const data = e instanceof MatrixError ? (e.data as IAuthData) : undefined;
      const flows = data?.flows ?? [];
      if (!(e instanceof MatrixError) || e.httpStatus !== 401 || !flows.some((f) => f.stages.includes("m.login.password"))) throw e;
      const pw = await password();
      if (!pw) throw new Error("Cancelled", { cause: e });
      await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: client.getSafeUserId() }, password: pw, session: data?.session });
    }
  };
}

/** A UIA callback for a password already known: sent with the first request, no 401 round trip first. */
export function eagerPasswordAuth(client: MatrixClient, password: string): UIAuthCallback<void> {
  return async (makeRequest) => {
    await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: client.getSafeUserId() }, password });
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

// Key work (making, replacing or importing cross-signing keys) runs one at a time, and status reads wait
// for it: reading the status queries our own keys (userHasCrossSigningKeys does, for the own user), and
// a query answered while new keys are on their way to the server returns the old identity, after which
// matrix-sdk-crypto drops the new private keys ("Removed some or all of our private cross signing keys").
let keyWork: Promise<unknown> = Promise.resolve();
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = keyWork.then(fn, fn);
  keyWork = run.catch(() => {});
  return run;
}

// Readers asking at the same time (the banner and the settings, on every crypto event) share one read.
let reading: Promise<SecurityStatus> | null = null;

export function getSecurityStatus(client: MatrixClient): Promise<SecurityStatus> {
  if (!reading) {
    reading = readSecurityStatus(client).finally(() => {
      reading = null;
    });
  }
  return reading;
}

async function readSecurityStatus(client: MatrixClient): Promise<SecurityStatus> {
  await keyWork;
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
export function setUpRecovery(client: MatrixClient, password: () => Promise<string | null>): Promise<string> {
  return exclusive(() => doSetUpRecovery(client, password));
}

async function doSetUpRecovery(client: MatrixClient, password: () => Promise<string | null>): Promise<string> {
  const crypto = client.getCrypto()!;
  await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(client, password) });
  const key = await crypto.createRecoveryKeyFromPassphrase();
  await crypto.bootstrapSecretStorage({
    createSecretStorageKey: () => Promise.resolve(key),
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

/**
 * "I lost my recovery key": a new cross-signing identity, a new key backup and new secret storage
 * under a new recovery key, which is returned to show once. The old backup is deleted on the server:
 * messages whose keys only it held can no longer be read (this device keeps the keys it has, and puts
 * them in the new backup). Other people and this account's other devices must verify it again.
 * What Element's "reset identity" does: resetEncryption, then secret storage for the new keys.
 */
export function resetRecovery(client: MatrixClient, password: string): Promise<string> {
  return exclusive(() => doResetRecovery(client, password));
}

async function doResetRecovery(client: MatrixClient, password: string): Promise<string> {
  const crypto = client.getCrypto()!;
  // The password goes with the first upload (no 401 round trip), to keep the window below short.
  const auth = eagerPasswordAuth(client, password);
  await crypto.resetEncryption(auth);
  // Should a key query still have crossed the upload (see exclusive), the new private keys are gone;
  // the server has the new public keys by now: make the identity once more.
  for (let attempt = 0; attempt < 3 && !(await crypto.isCrossSigningReady()); attempt++) {
    await crypto.bootstrapCrossSigning({ setupNewCrossSigning: true, authUploadDeviceSigningKeys: auth });
  }
  if (!(await crypto.isCrossSigningReady())) throw new Error("Resetting didn't finish. Try again.");
  const key = await crypto.createRecoveryKeyFromPassphrase();
  await crypto.bootstrapSecretStorage({ createSecretStorageKey: () => Promise.resolve(key), setupNewSecretStorage: true });
  return key.encodedPrivateKey!;
}

/** Whether this device holds every secret the recovery key protects, so a new key can replace a lost one at no cost. */
export async function canReplaceRecoveryKey(client: MatrixClient): Promise<boolean> {
  const crypto = client.getCrypto();
  if (!crypto) return false;
  const [status, backupKey, backup] = await Promise.all([crypto.getCrossSigningStatus(), crypto.getSessionBackupPrivateKey(), crypto.getKeyBackupInfo().catch(() => null)]);
  const k = status.privateKeysCachedLocally;
  return k.masterKey && k.selfSigningKey && k.userSigningKey && (!backup || !!backupKey);
}

/** A new recovery key for the same identity and backup (see canReplaceRecoveryKey): nothing is lost. */
export function replaceRecoveryKey(client: MatrixClient): Promise<string> {
  return exclusive(async () => {
    const crypto = client.getCrypto()!;
    const key = await crypto.createRecoveryKeyFromPassphrase();
    await crypto.bootstrapSecretStorage({ createSecretStorageKey: () => Promise.resolve(key), setupNewSecretStorage: true });
    return key.encodedPrivateKey!;
  });
}

// Encrypted attachments (spec: "Sending encrypted attachments"): AES-256-CTR with a random key,
// a 128-bit IV whose low 64 bits (the counter) start at zero, and a SHA-256 of the ciphertext.

export interface EncryptedFileInfo {
  url: string;
  key: { kty: "oct"; key_ops: string[]; alg: "A256CTR"; k: string; ext: true };
  iv: string;
  hashes: { sha256: string };
  v: "v2";
}

function subtle(): SubtleCrypto {
  const c = globalThis.crypto;
  if (!c?.subtle) throw new Error("This browser can't encrypt files (WebCrypto unavailable; use https or localhost).");
  return c.subtle;
}

export function toUnpaddedBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/=+$/, "");
}

export function fromBase64(b64: string): Uint8Array<ArrayBuffer> {
  const std = b64.replace(/-/g, "+").replace(/_/g, "/");
  const padded = std + "===".slice((std.length + 3) % 4);
  const bin = atob(padded);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export async function encryptAttachment(
  plaintext: ArrayBuffer,
): Promise<{ data: ArrayBuffer; info: Omit<EncryptedFileInfo, "url"> }> {
  const iv = new Uint8Array(16);
  crypto.getRandomValues(iv.subarray(0, 8));
  const key = await subtle().generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]);
  const jwk = await subtle().exportKey("jwk", key);
  const data = await subtle().encrypt({ name: "AES-CTR", counter: iv, length: 64 }, key, plaintext);
  const digest = await subtle().digest("SHA-256", data);
  return {
    data,
    info: {
      key: { kty: "oct", key_ops: ["encrypt", "decrypt"], alg: "A256CTR", k: jwk.k!, ext: true },
      iv: toUnpaddedBase64(iv),
      hashes: { sha256: toUnpaddedBase64(new Uint8Array(digest)) },
      v: "v2",
    },
  };
}

export async function decryptAttachment(ciphertext: ArrayBuffer, info: Omit<EncryptedFileInfo, "url">): Promise<ArrayBuffer> {
  if (!info?.key?.k || !info.iv || !info.hashes?.sha256) throw new Error("Attachment is missing its key");
  const digest = new Uint8Array(await subtle().digest("SHA-256", ciphertext));
  if (toUnpaddedBase64(digest) !== info.hashes.sha256.replace(/=+$/, "")) {
    throw new Error("Attachment doesn't match its hash (it may have been tampered with)");
  }
  const key = await subtle().importKey(
    "jwk",
    { kty: "oct", k: info.key.k, alg: "A256CTR", ext: true, key_ops: ["encrypt", "decrypt"] },
    { name: "AES-CTR" },
    false,
    ["decrypt"],
  );
  return subtle().decrypt({ name: "AES-CTR", counter: fromBase64(info.iv), length: 64 }, key, ciphertext);
}

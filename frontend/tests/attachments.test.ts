import { describe, expect, it } from "vitest";
import { decryptAttachment, encryptAttachment, fromBase64, toUnpaddedBase64 } from "../src/lib/attachments";

describe("encrypted attachments", () => {
  it("round-trips and produces spec-shaped metadata", async () => {
    const plain = new TextEncoder().encode("a picture, honestly").buffer;
    const { data, info } = await encryptAttachment(plain);
    expect(new Uint8Array(data)).not.toEqual(new Uint8Array(plain));
    expect(info.v).toBe("v2");
    expect(info.key).toMatchObject({ kty: "oct", alg: "A256CTR", ext: true });
    expect(info.key.key_ops).toEqual(expect.arrayContaining(["encrypt", "decrypt"]));
    // the counter half of the IV starts at zero
    expect(Array.from(fromBase64(info.iv).slice(8))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(info.hashes.sha256).not.toMatch(/=/);
    const back = await decryptAttachment(data, info);
    expect(new TextDecoder().decode(back)).toBe("a picture, honestly");
  });
  it("refuses tampered ciphertext", async () => {
    const { data, info } = await encryptAttachment(new Uint8Array([1, 2, 3, 4]).buffer);
    const bad = new Uint8Array(data);
    bad[0] ^= 0xff;
    await expect(decryptAttachment(bad.buffer, info)).rejects.toThrow(/hash/);
  });
  it("base64 helpers", () => {
    expect(toUnpaddedBase64(new Uint8Array([255, 254]))).toBe("//4");
    expect(Array.from(fromBase64("//4"))).toEqual([255, 254]);
    expect(Array.from(fromBase64("__4"))).toEqual([255, 254]);
  });
});

import { useEffect, useState } from "react";
import type { MatrixClient, MatrixEvent, Room } from "matrix-js-sdk";
import { CryptoEvent, EventShieldColour, EventShieldReason } from "matrix-js-sdk/lib/crypto-api/index.js";

export interface RoomTrust {
  level: "verified" | "unverified" | "warning";
  label: string;
  detail: string;
}

/** Encryption status of a room's members: all verified, some unverified, or an identity/device warning. */
export function useRoomTrust(client: MatrixClient, room: Room): RoomTrust {
  const [trust, setTrust] = useState<RoomTrust>({ level: "unverified", label: "Encrypted", detail: "Messages are end-to-end encrypted." });
  useEffect(() => {
    let alive = true;
    const crypto = client.getCrypto();
    if (!crypto) return;
    const compute = async () => {
      const members = room.getJoinedMembers().map((m) => m.userId);
      const others = members.filter((u) => u !== client.getSafeUserId());
      const unverified: string[] = [];
      let warn = false;
      for (const u of others) {
        try {
          const s = await crypto.getUserVerificationStatus(u);
          if (s.wasCrossSigningVerified() && !s.isCrossSigningVerified()) warn = true;
          else if (!s.isCrossSigningVerified()) unverified.push(u);
        } catch {
          unverified.push(u);
        }
      }
      if (!alive) return;
      if (warn) setTrust({ level: "warning", label: "Identity changed", detail: "Someone's identity changed since you verified them." });
      else if (others.length && unverified.length === 0) setTrust({ level: "verified", label: "Encrypted · verified", detail: "Everyone here is verified." });
      else setTrust({ level: "unverified", label: "Encrypted", detail: unverified.length ? `Not verified: ${unverified.join(", ")}` : "Messages are end-to-end encrypted." });
    };
    void compute();
    const on = () => void compute();
    client.on(CryptoEvent.UserTrustStatusChanged as never, on as never);
    client.on(CryptoEvent.DevicesUpdated as never, on as never);
    return () => {
      alive = false;
      client.off(CryptoEvent.UserTrustStatusChanged as never, on as never);
      client.off(CryptoEvent.DevicesUpdated as never, on as never);
    };
  }, [client, room]);
  return trust;
}

export interface EventShield {
  colour: "none" | "grey" | "red" | "unverified";
  text: string;
}

const REASON_TEXT: Partial<Record<EventShieldReason, string>> = {
  [EventShieldReason.UNVERIFIED_IDENTITY]: "Sent by a user you haven't verified",
  [EventShieldReason.UNSIGNED_DEVICE]: "Sent from a device its owner hasn't verified",
  [EventShieldReason.UNKNOWN_DEVICE]: "Sent from an unknown or deleted device",
  [EventShieldReason.AUTHENTICITY_NOT_GUARANTEED]: "Authenticity can't be guaranteed on this device",
  [EventShieldReason.MISMATCHED_SENDER_KEY]: "Encrypted by an unverified device",
  [EventShieldReason.SENT_IN_CLEAR]: "Not encrypted",
  [EventShieldReason.VERIFICATION_VIOLATION]: "Sender's identity changed since it was verified",
  [EventShieldReason.MISMATCHED_SENDER]: "Sender doesn't match the encrypting device",
};

/** A number that changes whenever anyone's verification status may have changed. */
export function useTrustEpoch(client: MatrixClient): number {
  const [epoch, setEpoch] = useState(0);
  useEffect(() => {
    const bump = () => setEpoch((e) => e + 1);
    client.on(CryptoEvent.UserTrustStatusChanged as never, bump as never);
    client.on(CryptoEvent.DevicesUpdated as never, bump as never);
    return () => {
      client.off(CryptoEvent.UserTrustStatusChanged as never, bump as never);
      client.off(CryptoEvent.DevicesUpdated as never, bump as never);
    };
  }, [client]);
  return epoch;
}

/** Per-message shield: the SDK's verdict, plus "unverified device" when the sender's device isn't verified. */
export function useEventShield(client: MatrixClient, ev: MatrixEvent, decryptedTick: unknown): EventShield {
  const [shield, setShield] = useState<EventShield>({ colour: "none", text: "" });
  useEffect(() => {
    let alive = true;
    const crypto = client.getCrypto();
    if (!crypto || !ev.isEncrypted() || ev.isDecryptionFailure() || ev.status) return;
    // our own messages from this very device need no shield
    if (ev.getSender() === client.getSafeUserId() && ev.getWireContent()?.device_id === client.getDeviceId()) return;
    (async () => {
      const info = await crypto.getEncryptionInfoForEvent(ev);
      if (!alive || !info) return;
      if (info.shieldColour === EventShieldColour.RED || info.shieldColour === EventShieldColour.GREY) {
        // "not verified yet" is the normal state of a new contact: amber. Red is for real warnings.
        const softReasons = [EventShieldReason.UNSIGNED_DEVICE, EventShieldReason.UNVERIFIED_IDENTITY, EventShieldReason.UNKNOWN_DEVICE];
        const soft = info.shieldReason != null && softReasons.includes(info.shieldReason);
        setShield({
          colour: soft ? "unverified" : info.shieldColour === EventShieldColour.RED ? "red" : "grey",
          text: (info.shieldReason != null && REASON_TEXT[info.shieldReason]) || "Can't confirm who sent this",
        });
        return;
      }
      const sender = ev.getSender();
      const deviceId = ev.getWireContent()?.device_id as string | undefined;
      if (sender && deviceId) {
        const status = await crypto.getDeviceVerificationStatus(sender, deviceId);
        if (!alive) return;
        if (status && !status.isVerified()) {
          setShield({ colour: "unverified", text: sender === client.getSafeUserId() ? "Sent from one of your devices that isn't verified" : "Sent from a device that isn't verified" });
          return;
        }
      }
      setShield({ colour: "none", text: "Encrypted by a verified device" });
    })().catch(() => {});
    return () => {
      alive = false;
    };
  }, [client, ev, decryptedTick]);
  return shield;
}

// React hooks over the signed-in client: its sync state, the user's own profile, incoming
// verification requests and the recovery-key prompt that secret storage asks for.
import { useEffect, useState } from "react";
import { ClientEvent, RoomMemberEvent, SyncState, type MatrixClient } from "matrix-js-sdk";
import { CryptoEvent, type VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { setRecoveryKeyPrompt } from "./client";

const SYNCED = new Set<SyncState | null>([SyncState.Prepared, SyncState.Syncing, SyncState.Catchup]);

export interface SyncStatus {
  state: SyncState | null;
  /** The room list is known: the first sync (or the on-device cache) has been processed. */
  ready: boolean;
}

/** The client's sync state, and whether it has ever got far enough to know the user's rooms. */
export function useSyncStatus(client: MatrixClient): SyncStatus {
  const [status, setStatus] = useState<SyncStatus>(() => {
    const state = client.getSyncState();
    return { state, ready: SYNCED.has(state) };
  });
  useEffect(() => {
    const onSync = (state: SyncState) => setStatus((s) => ({ state, ready: s.ready || SYNCED.has(state) }));
    client.on(ClientEvent.Sync, onSync);
    return () => void client.off(ClientEvent.Sync, onSync);
  }, [client]);
  return status;
}

export interface Profile {
  displayname?: string;
  avatar_url?: string;
}

/** The user's own display name and avatar, refreshed when they change them. */
export function useOwnProfile(client: MatrixClient): Profile {
  const [profile, setProfile] = useState<Profile>({});
  useEffect(() => {
    const me = client.getSafeUserId();
    const load = () => client.getProfileInfo(me).then(setProfile, () => {});
    void load();
    const onMember = (_ev: unknown, member: { userId: string }) => {
      if (member.userId === me) void load();
    };
    client.on(RoomMemberEvent.Name, onMember);
    return () => void client.off(RoomMemberEvent.Name, onMember);
  }, [client]);
  return profile;
}

/** The verification request to show (one that arrived, or one the user started), and a way to set it. */
export function useVerificationRequest(client: MatrixClient): [VerificationRequest | null, (r: VerificationRequest | null) => void] {
  const [request, setRequest] = useState<VerificationRequest | null>(null);
  useEffect(() => {
    const onRequest = (req: VerificationRequest) => setRequest(req);
    client.on(CryptoEvent.VerificationRequestReceived, onRequest);
    return () => void client.off(CryptoEvent.VerificationRequestReceived, onRequest);
  }, [client]);
  return [request, setRequest];
}

export interface KeyPrompt {
  reason: string;
  resolve: (key: string | null) => void;
}

/** Secret storage's requests for the recovery key, one at a time, while mounted. */
export function useRecoveryKeyPrompt(): KeyPrompt | null {
  const [prompt, setPrompt] = useState<KeyPrompt | null>(null);
  useEffect(() => {
    setRecoveryKeyPrompt(
      (reason) =>
        new Promise<string | null>((resolve) =>
          setPrompt({
            reason,
            resolve: (key) => {
              setPrompt(null);
              resolve(key);
            },
          }),
        ),
    );
    return () => setRecoveryKeyPrompt(null);
  }, []);
  return prompt;
}

import { useCallback, useEffect, useState } from "react";
import { ClientEvent, EventType, RoomEvent, RoomMemberEvent, SyncState, UserEvent, type MatrixClient, type Room } from "matrix-js-sdk";
import { CryptoEvent, type VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { useEvents } from "../lib/hooks";
import { sortRooms, summarise, formatTime, type RoomSummary } from "../lib/rooms";
import { acceptInvite, directRoomUserId, setRecoveryKeyPrompt } from "../lib/client";
import { plainTextOf, buildTimeline } from "../lib/timeline";
import { describeError } from "../lib/errors";
import { Avatar } from "./Avatar";
import { IconPlus, IconSearch, IconSettings, IconWifiOff, IconLock, Logo } from "./Icons";
import { RoomView } from "./RoomView";
import { NewRoomDialog } from "./NewRoomDialog";
import { SettingsDialog } from "./SettingsDialog";
import { VerificationDialog } from "./VerificationDialog";
import { RecoveryKeyDialog } from "./RecoveryKeyDialog";
import { EncryptionBanner } from "./EncryptionBanner";
import { CallHost } from "../calls/CallHost";

function roomFromHash(): string | null {
  const m = /^#\/room\/(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

export function Chat({ client, onLogout }: { client: MatrixClient; onLogout: () => void }) {
  useEvents(client, [ClientEvent.Room, ClientEvent.DeleteRoom, RoomEvent.Timeline, RoomEvent.Name, RoomEvent.MyMembership, RoomEvent.UnreadNotifications, RoomEvent.Receipt, ClientEvent.AccountData, "Event.decrypted", RoomEvent.LocalEchoUpdated, RoomMemberEvent.Membership, UserEvent.Presence]);
  const [selected, setSelected] = useState<string | null>(roomFromHash);
  const [dialog, setDialog] = useState<null | "new" | "settings">(null);
  const [settingsTab, setSettingsTab] = useState<"profile" | "security" | "devices">("profile");
  const [filter, setFilter] = useState("");
  const [syncState, setSyncState] = useState<SyncState | null>(client.getSyncState());
  const [online, setOnline] = useState(typeof navigator === "undefined" ? true : navigator.onLine);
  const [verification, setVerification] = useState<VerificationRequest | null>(null);
  const [keyPrompt, setKeyPrompt] = useState<null | { reason: string; resolve: (k: string | null) => void }>(null);
  const [toast, setToast] = useState<string | null>(null);
  const [profile, setProfile] = useState<{ displayname?: string; avatar_url?: string }>({});
  useEffect(() => {
    client.getProfileInfo(client.getSafeUserId()).then(setProfile, () => {});
    const onMember = (_ev: unknown, member: { userId: string }) => {
      if (member.userId === client.getSafeUserId()) client.getProfileInfo(member.userId).then(setProfile, () => {});
    };
    client.on(RoomMemberEvent.Name, onMember);
    return () => void client.off(RoomMemberEvent.Name, onMember);
  }, [client]);

  useEffect(() => {
    const onSync = (s: SyncState) => setSyncState(s);
    client.on(ClientEvent.Sync, onSync);
    const up = () => setOnline(true);
    const down = () => setOnline(false);
    window.addEventListener("online", up);
    window.addEventListener("offline", down);
    const onHash = () => setSelected(roomFromHash());
    window.addEventListener("hashchange", onHash);
    const onRequest = (req: VerificationRequest) => setVerification(req);
    client.on(CryptoEvent.VerificationRequestReceived as never, onRequest as never);
    setRecoveryKeyPrompt((reason) => new Promise((resolve) => setKeyPrompt({ reason, resolve })));
    return () => {
      client.off(ClientEvent.Sync, onSync);
      window.removeEventListener("online", up);
      window.removeEventListener("offline", down);
      window.removeEventListener("hashchange", onHash);
      client.off(CryptoEvent.VerificationRequestReceived as never, onRequest as never);
      setRecoveryKeyPrompt(null);
    };
  }, [client]);

  const select = useCallback((roomId: string | null) => {
    setSelected(roomId);
    const hash = roomId ? `#/room/${encodeURIComponent(roomId)}` : "";
    if (location.hash !== hash) history.pushState(null, "", hash || location.pathname);
  }, []);

  const directContent = client.getAccountData(EventType.Direct)?.getContent() ?? {};
  const directRooms = new Set(Object.values(directContent).flat() as string[]);

  const rooms: RoomSummary[] = sortRooms(
    client
      .getRooms()
      .filter((r) => ["join", "invite"].includes(r.getMyMembership()))
      .map((r) => summarise(client, r, directRooms)),
  );
  const shown = filter ? rooms.filter((r) => r.name.toLowerCase().includes(filter.toLowerCase())) : rooms;
  const room = selected ? client.getRoom(selected) : null;
  const me = client.getUser(client.getSafeUserId());
  const offline = !online || syncState === SyncState.Error || syncState === SyncState.Reconnecting;

  return (
    <div className={`app ${room ? "has-room" : "no-room"}`}>
      <aside className="sidebar" aria-label="Rooms">
        <header className="sidebar-header">
          <button className="me" onClick={() => { setSettingsTab("profile"); setDialog("settings"); }} title="Settings" data-testid="open-settings">
            <Avatar client={client} id={client.getSafeUserId()} name={profile.displayname || me?.displayName || client.getSafeUserId()} mxc={profile.avatar_url ?? me?.avatarUrl} size={36} />
            <span className="me-text">
              <strong>{profile.displayname || me?.displayName || client.getSafeUserId()}</strong>
              <span className="muted small">{client.getSafeUserId()}</span>
            </span>
          </button>
          <button className="icon-btn" onClick={() => { setSettingsTab("profile"); setDialog("settings"); }} aria-label="Settings">
            <IconSettings />
          </button>
        </header>
        {offline && (
          <div className="offline-bar" role="status" data-testid="offline-banner">
            <IconWifiOff width={16} height={16} /> {online ? "Reconnecting to the server…" : "You're offline. Showing what's saved on this device."}
          </div>
        )}
        <EncryptionBanner client={client} onOpenSecurity={() => { setSettingsTab("security"); setDialog("settings"); }} />
        <div className="sidebar-tools">
          <label className="search">
            <IconSearch width={16} height={16} />
            <input value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="Search rooms" aria-label="Search rooms" />
          </label>
          <button className="btn btn-primary btn-icon" onClick={() => setDialog("new")} aria-label="New chat" data-testid="new-chat">
            <IconPlus />
          </button>
        </div>
        <nav className="room-list" data-testid="room-list">
          {shown.length === 0 && (
            <div className="empty-list">
              <p className="muted">{syncState === null || syncState === SyncState.Prepared || rooms.length ? "No rooms match." : "Loading…"}</p>
              {!filter && <button className="btn" onClick={() => setDialog("new")}>Start a chat</button>}
            </div>
          )}
          {shown.map((r) => (
            <RoomRow key={r.roomId} client={client} summary={r} active={r.roomId === selected} onSelect={() => select(r.roomId)} onError={setToast} />
          ))}
        </nav>
      </aside>
      <main className="main">
        {room ? (
          <RoomView key={room.roomId} client={client} room={room} onBack={() => select(null)} onLeft={() => select(null)} onVerify={setVerification} />
        ) : (
          <div className="welcome">
            <Logo size={72} />
            <h2>Welcome to WSPR</h2>
            <p className="muted">Pick a conversation, or start a new one. Direct messages and private rooms are end-to-end encrypted.</p>
            <button className="btn btn-primary" onClick={() => setDialog("new")}>
              <IconPlus width={18} height={18} /> New chat
            </button>
          </div>
        )}
      </main>
      <CallHost client={client} selectedRoomId={selected} />
      {dialog === "new" && <NewRoomDialog client={client} onClose={() => setDialog(null)} onCreated={(id) => { setDialog(null); select(id); }} />}
      {dialog === "settings" && <SettingsDialog client={client} initialTab={settingsTab} onClose={() => setDialog(null)} onLogout={onLogout} onVerify={(r) => setVerification(r)} />}
      {verification && <VerificationDialog client={client} request={verification} onClose={() => setVerification(null)} />}
      {keyPrompt && (
        <RecoveryKeyDialog
          reason={keyPrompt.reason}
          onDone={(k) => {
            keyPrompt.resolve(k);
            setKeyPrompt(null);
          }}
        />
      )}
      {toast && (
        <div className="toast" role="alert" onClick={() => setToast(null)}>
          {toast}
        </div>
      )}
    </div>
  );
}

function RoomRow({ client, summary, active, onSelect, onError }: { client: MatrixClient; summary: RoomSummary; active: boolean; onSelect: () => void; onError: (m: string) => void }) {
  const room = client.getRoom(summary.roomId) as Room;
  const dmUser = summary.isDirect ? directRoomUserId(client, room) : undefined;
  const presence = dmUser ? client.getUser(dmUser)?.presence : undefined;
  const avatarMxc = room.getMxcAvatarUrl() ?? (dmUser ? room.getMember(dmUser)?.getMxcAvatarUrl() : undefined);
  const [busy, setBusy] = useState(false);
  let preview = "";
  if (summary.membership === "invite") {
    const inviter = room.getMember(client.getSafeUserId())?.events.member?.getSender();
    preview = `Invited by ${inviter ? (room.getMember(inviter)?.name ?? inviter) : "someone"}`;
  } else if (summary.lastEvent) {
    const [item] = buildTimeline([summary.lastEvent], client.getSafeUserId());
    const who = summary.lastEvent.getSender() === client.getSafeUserId() ? "You" : (room.getMember(summary.lastEvent.getSender()!)?.name ?? "");
    preview = item ? `${summary.isDirect && who !== "You" ? "" : who + ": "}${plainTextOf(item)}` : "";
  }
  async function act(fn: () => Promise<unknown>) {
    setBusy(true);
    try {
      await fn();
    } catch (e) {
      const f = describeError(e);
      onError(`${f.title}${f.detail ? `: ${f.detail}` : ""}`);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className={`room-row ${active ? "active" : ""} ${summary.unread ? "unread" : ""}`} data-testid="room-row" data-room-id={summary.roomId} data-room-name={summary.name}>
      <button className="room-row-main" onClick={onSelect} aria-current={active ? "page" : undefined}>
        <Avatar client={client} id={summary.roomId} name={summary.name} mxc={avatarMxc} size={44} presence={presence} />
        <span className="room-row-text">
          <span className="room-row-top">
            <span className="room-name">
              {summary.encrypted && <IconLock width={12} height={12} className="lock" />} {summary.name}
            </span>
            {summary.lastActivity > 0 && summary.membership !== "invite" && <span className="muted small">{formatTime(summary.lastActivity)}</span>}
          </span>
          <span className="room-row-bottom">
            <span className="preview muted">{preview}</span>
            {summary.highlight > 0 ? (
              <span className="badge badge-highlight" aria-label={`${summary.highlight} mentions`}>{summary.highlight}</span>
            ) : summary.unread > 0 ? (
              <span className="badge" aria-label={`${summary.unread} unread`}>{summary.unread}</span>
            ) : null}
          </span>
        </span>
      </button>
      {summary.membership === "invite" && (
        <div className="invite-actions">
          <button className="btn btn-primary btn-sm" disabled={busy} data-testid="accept-invite" onClick={() => act(() => acceptInvite(client, room))}>
            Accept
          </button>
          <button className="btn btn-sm" disabled={busy} onClick={() => act(() => client.leave(room.roomId))}>
            Decline
          </button>
        </div>
      )}
    </div>
  );
}

import { useState } from "react";
import { ClientEvent, EventType, RoomEvent, RoomMemberEvent, SyncState, UserEvent, type MatrixClient } from "matrix-js-sdk";
import { useEvents, useOnline } from "../lib/hooks";
import { useOwnProfile, useSyncStatus } from "../lib/clientHooks";
import { sortRooms, summarise } from "../lib/rooms";
import { Avatar } from "./Avatar";
import { IconPlus, IconSearch, IconSettings, IconWifiOff } from "./Icons";
import { EncryptionBanner } from "./EncryptionBanner";
import { RoomRow } from "./RoomRow";
import { replacementOf } from "./roomsettings/RoomReplaced";
import { NotificationPrompt } from "../notifications/NotificationPrompt";
import type { NewChatTab } from "./NewRoomDialog";
import type { SettingsTab } from "./SettingsDialog";

const LIST_EVENTS = [ClientEvent.Room, ClientEvent.DeleteRoom, RoomEvent.Timeline, RoomEvent.Name, RoomEvent.MyMembership, RoomEvent.UnreadNotifications, RoomEvent.Receipt, ClientEvent.AccountData, "Event.decrypted", RoomEvent.LocalEchoUpdated, RoomMemberEvent.Membership, UserEvent.Presence];

/** The sidebar: who you are, connection state, the search field and the rooms (or what to do without any). */
export function RoomList({ client, selectedRoomId, onSelect, onNewChat, onSettings, onError }: {
  client: MatrixClient;
  selectedRoomId: string | null;
  onSelect: (roomId: string) => void;
  onNewChat: (tab: NewChatTab) => void;
  onSettings: (tab: SettingsTab) => void;
  onError: (message: string) => void;
}) {
  useEvents(client, LIST_EVENTS);
  const [filter, setFilter] = useState("");
  const sync = useSyncStatus(client);
  const online = useOnline();
  const profile = useOwnProfile(client);
  const me = client.getUser(client.getSafeUserId());
  const myName = profile.displayname || me?.displayName || client.getSafeUserId();
  const offline = !online || sync.state === SyncState.Error || sync.state === SyncState.Reconnecting;

  const directRooms = new Set(Object.values(client.getAccountData(EventType.Direct)?.getContent() ?? {}).flat() as string[]);
  // an upgraded room leaves the list once its replacement is joined (it stays reachable from there)
  const joined = client.getRooms().filter((r) => ["join", "invite"].includes(r.getMyMembership()) && client.getRoom(replacementOf(r) ?? "")?.getMyMembership() !== "join");
  const summaries = sortRooms(joined.map((r) => summarise(client, r, directRooms)));
  const shown = filter ? summaries.filter((r) => r.name.toLowerCase().includes(filter.toLowerCase())) : summaries;

  return (
    <aside className="sidebar" aria-label="Rooms">
      <header className="sidebar-header">
        <button className="me" onClick={() => onSettings("profile")} title="Settings" data-testid="open-settings">
          <Avatar client={client} id={client.getSafeUserId()} name={myName} mxc={profile.avatar_url ?? me?.avatarUrl} size={36} />
          <span className="me-text">
            <strong>{myName}</strong>
            <span className="muted small">{client.getSafeUserId()}</span>
          </span>
        </button>
        <button className="icon-btn" onClick={() => onSettings("profile")} aria-label="Settings">
          <IconSettings />
        </button>
      </header>
      {offline && (
        <div className="offline-bar" role="status" data-testid="offline-banner">
          <IconWifiOff width={16} height={16} /> {online ? "Reconnecting to the server…" : "You're offline. Showing what's saved on this device."}
        </div>
      )}
      <EncryptionBanner client={client} onOpenSecurity={() => onSettings("security")} />
      <NotificationPrompt />
      <div className="sidebar-tools">
        <label className="search">
          <IconSearch width={16} height={16} />
          <input value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="Search rooms" aria-label="Search rooms" />
        </label>
        <button className="btn btn-primary btn-icon" onClick={() => onNewChat("dm")} aria-label="New chat" data-testid="new-chat">
          <IconPlus />
        </button>
      </div>
      <nav className="room-list" data-testid="room-list" data-ready={sync.ready}>
        {shown.length === 0 &&
          (filter ? (
            <div className="empty-list">
              <p className="muted">No rooms match “{filter}”.</p>
            </div>
          ) : !sync.ready ? (
            <div className="empty-list" role="status" data-testid="rooms-loading">
              <p className="muted">Loading your conversations…</p>
            </div>
          ) : (
            <NoRoomsYet onNewChat={onNewChat} />
          ))}
        {shown.map((r) => {
          const room = client.getRoom(r.roomId);
          return room ? <RoomRow key={r.roomId} client={client} room={room} summary={r} active={r.roomId === selectedRoomId} onSelect={() => onSelect(r.roomId)} onError={onError} /> : null;
        })}
      </nav>
    </aside>
  );
}

/** A new account's room list: the three ways in. */
function NoRoomsYet({ onNewChat }: { onNewChat: (tab: NewChatTab) => void }) {
  return (
    <div className="empty-list empty-start" data-testid="rooms-empty">
      <h3>No conversations yet</h3>
      <p className="muted small">Messages you send here are end-to-end encrypted. Start with one of these:</p>
      <div className="empty-actions">
        <button className="btn btn-primary" onClick={() => onNewChat("dm")} data-testid="empty-start-chat">
          Start a chat
          <span className="small">with someone's user ID</span>
        </button>
        <button className="btn" onClick={() => onNewChat("join")} data-testid="empty-join-room">
          Join a room
          <span className="small muted">by its address</span>
        </button>
        <button className="btn" onClick={() => onNewChat("explore")} data-testid="empty-explore">
          Explore public rooms
          <span className="small muted">in the directory</span>
        </button>
      </div>
    </div>
  );
}

import { useState } from "react";
import { RoomMemberEvent, RoomStateEvent, type MatrixClient, type Room } from "matrix-js-sdk";
import type { VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { useEvents } from "../lib/hooks";
import { Dialog } from "./Dialog";
import { General } from "./roomsettings/General";
import { People } from "./roomsettings/People";
import { Permissions } from "./roomsettings/Permissions";
import { Privacy } from "./roomsettings/Privacy";
import { Advanced } from "./roomsettings/Advanced";
import "./settings/settings.css";
import "./roomsettings/roomsettings.css";

export type RoomSettingsTab = "general" | "people" | "permissions" | "privacy" | "advanced";
const TABS: Record<RoomSettingsTab, string> = { general: "General", people: "People", permissions: "Roles", privacy: "Privacy", advanced: "Advanced" };

/** Room settings: name, topic, picture and invite link; people and their roles; permissions; who can join and read; the room version. */
export function RoomSettingsDialog({ client, room, initialTab = "general", onClose, onLeft, onVerify, onUpgraded }: {
  client: MatrixClient;
  room: Room;
  initialTab?: RoomSettingsTab;
  onClose: () => void;
  onLeft: () => void;
  onVerify?: (r: VerificationRequest) => void;
  /** the room was upgraded: open its replacement */
  onUpgraded?: (newRoomId: string) => void;
}) {
  // every tab shows room state: re-render as it changes (here or from others)
  useEvents(client, [RoomStateEvent.Events, RoomMemberEvent.Membership, RoomMemberEvent.PowerLevel, RoomMemberEvent.Name]);
  const [tab, setTab] = useState<RoomSettingsTab>(initialTab);
  return (
    <Dialog title="Room settings" onClose={onClose} wide testId="room-settings-dialog">
      <div className="segmented settings-tabs" role="tablist">
        {(Object.keys(TABS) as RoomSettingsTab[]).map((t) => (
          <button key={t} className={tab === t ? "on" : ""} onClick={() => setTab(t)} role="tab" aria-selected={tab === t} data-testid={`room-tab-${t}`}>
            {TABS[t]}
          </button>
        ))}
      </div>
      {tab === "general" && <General client={client} room={room} onClose={onClose} onLeft={onLeft} />}
      {tab === "people" && <People client={client} room={room} onVerify={onVerify} />}
      {tab === "permissions" && <Permissions client={client} room={room} />}
      {tab === "privacy" && <Privacy client={client} room={room} />}
      {tab === "advanced" && <Advanced client={client} room={room} onUpgraded={(id) => { onClose(); onUpgraded?.(id); }} />}
    </Dialog>
  );
}

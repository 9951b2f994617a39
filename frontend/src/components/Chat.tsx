import { lazy, Suspense, useEffect, useState } from "react";
import { ClientEvent, RoomEvent, type MatrixClient } from "matrix-js-sdk";
import { useEvents } from "../lib/hooks";
import { openRoom, roomFromHash, useOpenRoom } from "../lib/route";
import { startDesktopNotifications } from "../notifications/desktop";
import { useUnreadBadge } from "../notifications/useUnreadBadge";
import { useRecoveryKeyPrompt, useVerificationRequest } from "../lib/clientHooks";
import { IconPlus, Logo } from "./Icons";
import { RoomList } from "./RoomList";
import { RoomView } from "./RoomView";
import { NewRoomDialog, type NewChatTab } from "./NewRoomDialog";
import { SettingsDialog, type SettingsTab } from "./SettingsDialog";
import { VerificationDialog } from "./VerificationDialog";
import { RecoveryKeyDialog } from "./RecoveryKeyDialog";
import { CallHost } from "../calls/CallHost";
import { usePanel } from "./panel";
import { startLocalIndex } from "./search/indexer";

const RightPanel = lazy(() => import("./RightPanel").then((m) => ({ default: m.RightPanel })));
const RoomSwitcher = lazy(() => import("./search/RoomSwitcher").then((m) => ({ default: m.RoomSwitcher })));

type OpenDialog = { kind: "new"; tab: NewChatTab; term?: string } | { kind: "settings"; tab: SettingsTab } | { kind: "switcher" };

/** The signed-in app: the room list, the open room (from the URL), the active call and the dialogs. */
export function Chat({ client, onLogout }: { client: MatrixClient; onLogout: () => void }) {
  // the open room may arrive (or go) after the URL names it
  useEvents(client, [ClientEvent.Room, ClientEvent.DeleteRoom, RoomEvent.MyMembership]);
  const selected = useOpenRoom();
  const [dialog, setDialog] = useState<OpenDialog | null>(null);
  const [verification, setVerification] = useVerificationRequest(client);
  const keyPrompt = useRecoveryKeyPrompt();
  const [toast, setToast] = useState<string | null>(null);
  const room = selected ? client.getRoom(selected) : null;
  const panel = usePanel(room?.roomId ?? null);
  const newChat = (tab: NewChatTab) => setDialog({ kind: "new", tab });
  useUnreadBadge(client);
  useEffect(() => startDesktopNotifications(client, () => roomFromHash()), [client]);
  // encrypted rooms are searched on this device: index what it decrypts
  useEffect(() => startLocalIndex(client), [client]);
  // Ctrl+K / ⌘K: the room switcher
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "k") {
        e.preventDefault();
        setDialog((d) => (d?.kind === "switcher" ? null : { kind: "switcher" }));
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  return (
    <div className={`app ${room ? "has-room" : "no-room"} ${room && panel ? "has-panel" : ""}`}>
      <RoomList client={client} selectedRoomId={selected} onSelect={openRoom} onNewChat={newChat} onSettings={(tab) => setDialog({ kind: "settings", tab })} onError={setToast} />
      <main className="main">
        {room ? (
          <RoomView key={room.roomId} client={client} room={room} onBack={() => openRoom(null)} onLeft={() => openRoom(null)} onVerify={setVerification} />
        ) : (
          <div className="welcome">
            <Logo size={72} />
            <h2>Welcome to WSPR</h2>
            <p className="muted">Pick a conversation, or start a new one. Direct messages and private rooms are end-to-end encrypted.</p>
            <button className="btn btn-primary" onClick={() => newChat("dm")}>
              <IconPlus width={18} height={18} /> New chat
            </button>
          </div>
        )}
      </main>
      {room && panel && (
        <Suspense fallback={null}>
          <RightPanel client={client} room={room} panel={panel} />
        </Suspense>
      )}
      <CallHost client={client} selectedRoomId={selected} />
      {dialog?.kind === "new" && (
        <NewRoomDialog
          client={client}
          initialTab={dialog.tab}
          initialTerm={dialog.term}
          onClose={() => setDialog(null)}
          onCreated={(id) => {
            setDialog(null);
            openRoom(id);
          }}
        />
      )}
      {dialog?.kind === "switcher" && (
        <Suspense fallback={null}>
          <RoomSwitcher
            client={client}
            onClose={() => setDialog(null)}
            onOpen={(id) => {
              setDialog(null);
              openRoom(id);
            }}
            onExplore={(term) => setDialog({ kind: "new", tab: "explore", term })}
          />
        </Suspense>
      )}
      {dialog?.kind === "settings" && <SettingsDialog client={client} initialTab={dialog.tab} onClose={() => setDialog(null)} onLogout={onLogout} onVerify={setVerification} />}
      {verification && <VerificationDialog client={client} request={verification} onClose={() => setVerification(null)} />}
      {keyPrompt && <RecoveryKeyDialog reason={keyPrompt.reason} onDone={keyPrompt.resolve} />}
      {toast && (
        <div className="toast" role="alert" onClick={() => setToast(null)}>
          {toast}
        </div>
      )}
    </div>
  );
}

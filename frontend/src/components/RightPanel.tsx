// The panel beside the open room (a sheet over it on phones): the room's threads, one thread, or search.
import { lazy, Suspense } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { openPanel, type Panel } from "./panel";
import { IconBack, IconX } from "./Icons";
import { ThreadList } from "./threads/ThreadList";
import { ThreadView } from "./threads/ThreadView";
import "./threads/threads.css";

const SearchPanel = lazy(() => import("./search/SearchPanel").then((m) => ({ default: m.SearchPanel })));

export function RightPanel({ client, room, panel }: { client: MatrixClient; room: Room; panel: Panel }) {
  const title = panel.kind === "threads" ? "Threads" : panel.kind === "thread" ? "Thread" : "Search messages";
  const back = panel.kind === "thread" && panel.from === "threads" ? () => openPanel({ roomId: room.roomId, kind: "threads" }) : null;
  return (
    <aside className="right-panel" aria-label={title} data-testid={`${panel.kind}-panel`}>
      <header className="right-panel-header">
        {back && (
          <button className="icon-btn" onClick={back} aria-label="Back to threads">
            <IconBack />
          </button>
        )}
        <h2 className="grow">
          {title}
          <span className="muted small right-panel-room ellipsis"> {room.name}</span>
        </h2>
        <button className="icon-btn" onClick={() => openPanel(null)} aria-label={`Close ${title.toLowerCase()}`} data-testid="panel-close">
          <IconX />
        </button>
      </header>
      {panel.kind === "threads" && <ThreadList client={client} room={room} onOpen={(rootId) => openPanel({ roomId: room.roomId, kind: "thread", rootId, from: "threads" })} />}
      {panel.kind === "thread" && <ThreadView key={panel.rootId} client={client} room={room} rootId={panel.rootId} />}
      {panel.kind === "search" && (
        <Suspense fallback={<p className="muted small thread-status">Loading…</p>}>
          <SearchPanel client={client} room={room} />
        </Suspense>
      )}
    </aside>
  );
}

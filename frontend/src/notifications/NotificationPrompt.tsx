// Asks once, in the room list, whether to turn on desktop notifications (browsers only let a page ask
// after a click). Gone once answered or dismissed.
import { useState } from "react";
import { IconX } from "../components/Icons";
import { IconBell } from "./icons";
import { notificationPermission } from "./desktop";
import "./notifications.css";

const DISMISSED = "wspr.notify.prompted";

export function NotificationPrompt() {
  const [shown, setShown] = useState(() => notificationPermission() === "default" && !localStorage.getItem(DISMISSED));
  if (!shown) return null;
  const done = () => {
    localStorage.setItem(DISMISSED, "1");
    setShown(false);
  };
  return (
    <div className="notify-banner" role="region" aria-label="Notifications" data-testid="notification-prompt">
      <IconBell width={18} height={18} />
      <span className="grow">
        <strong>Get notified of new messages</strong>
        <span className="muted small">Desktop notifications on this device</span>
      </span>
      <button className="btn btn-primary btn-sm" onClick={() => void Notification.requestPermission().finally(done)}>Enable</button>
      <button className="icon-btn sm" aria-label="Not now" onClick={done}>
        <IconX width={14} height={14} />
      </button>
    </div>
  );
}

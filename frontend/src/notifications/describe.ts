// The words of a notification for an event (the same rules as the service worker's for Web Push).
import type { MatrixEvent, Room } from "matrix-js-sdk";

export interface NotificationText {
  title: string;
  body: string;
}

function messageText(content: Record<string, unknown>): string {
  const body = typeof content.body === "string" ? content.body : "";
  switch (content.msgtype) {
    case "m.image":
      return "sent an image";
    case "m.video":
      return "sent a video";
    case "m.audio":
      return "sent an audio message";
    case "m.file":
      return "sent a file";
    case "m.emote":
      return `* ${body}`;
    default:
      return body;
  }
}

/** Title (the room) and body ("Sender: text"; in a DM only the text) of a notification for `ev`. */
export function describeForNotification(ev: MatrixEvent, room: Room, isDirect: boolean): NotificationText {
  const sender = ev.getSender() ?? "";
  const name = room.getMember(sender)?.name ?? sender;
  const title = room.name || name || "WSPR";
  let text: string;
  if (ev.getType() === "m.room.member" && ev.getContent().membership === "invite") {
    return { title, body: `${name} invited you` };
  } else if (ev.isDecryptionFailure()) {
    text = "Encrypted message";
  } else if (ev.getType() === "m.room.encrypted") {
    text = "New message";
  } else if (ev.getType() === "m.room.message" || ev.getType() === "m.sticker") {
    text = ev.getType() === "m.sticker" ? "sent a sticker" : messageText(ev.getContent());
  } else if (ev.getType().startsWith("org.matrix.msc3401.call") || ev.getType() === "m.call.invite") {
    text = "started a call";
  } else {
    text = "New activity";
  }
  if (text.length > 300) text = `${text.slice(0, 299)}…`;
  return { title, body: isDirect && !text.startsWith("sent ") && !text.startsWith("* ") ? text : `${name}${text.startsWith("* ") ? "" : ": "}${text}` };
}

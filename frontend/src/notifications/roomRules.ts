// Per-room notification settings, stored as push rules the way Element stores them, so every client of
// the account (and the server's unread counts and pushes) agrees:
//   all messages         no rule of ours: the account's defaults apply
//   mentions & keywords  a room rule (rule_id = room id) with no actions; mentions and keywords are
//                        override and content rules, which are evaluated before room rules
//   mute                 an override rule (rule_id = room id) matching room_id with no actions
import { ConditionKind, PushRuleActionName, PushRuleKind, type IPushRule, type MatrixClient } from "matrix-js-sdk";

export type RoomNotifState = "all" | "mentions" | "mute";

function isMuteRule(rule: IPushRule, roomId: string): boolean {
  const c = rule.conditions ?? [];
  return (
    rule.enabled !== false &&
    c.length === 1 &&
    c[0].kind === ConditionKind.EventMatch &&
    c[0].key === "room_id" &&
    c[0].pattern === roomId &&
    !rule.actions.includes(PushRuleActionName.Notify)
  );
}

export function getRoomNotifState(client: MatrixClient, roomId: string): RoomNotifState {
  const global = client.pushRules?.global;
  const override = global?.override?.find((r) => r.rule_id === roomId);
  if (override && isMuteRule(override, roomId)) return "mute";
  const room = global?.room?.find((r) => r.rule_id === roomId);
  if (room && room.enabled !== false && !room.actions.includes(PushRuleActionName.Notify)) return "mentions";
  return "all";
}

export async function setRoomNotifState(client: MatrixClient, roomId: string, state: RoomNotifState): Promise<void> {
  const global = client.pushRules?.global;
  const hasOverride = !!global?.override?.some((r) => r.rule_id === roomId);
  const hasRoomRule = !!global?.room?.some((r) => r.rule_id === roomId);
  if (state === "mute") {
    // as Element: the room rule goes, the override silences everything
    if (hasRoomRule) await client.deletePushRule("global", PushRuleKind.RoomSpecific, roomId);
    await client.addPushRule("global", PushRuleKind.Override, roomId, {
      conditions: [{ kind: ConditionKind.EventMatch, key: "room_id", pattern: roomId }],
      actions: [],
    });
    return;
  }
  if (hasOverride) await client.deletePushRule("global", PushRuleKind.Override, roomId);
  if (state === "mentions") await client.addPushRule("global", PushRuleKind.RoomSpecific, roomId, { actions: [] });
  else if (hasRoomRule) await client.deletePushRule("global", PushRuleKind.RoomSpecific, roomId);
}

export const ROOM_NOTIF_LABELS: Record<RoomNotifState, { label: string; detail: string }> = {
  all: { label: "All messages", detail: "Notify for every message" },
  mentions: { label: "Mentions and keywords", detail: "Only when you're mentioned or a keyword is used" },
  mute: { label: "Mute", detail: "Never notify, no unread count" },
};

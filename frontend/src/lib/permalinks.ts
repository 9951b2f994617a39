// matrix.to permalinks: how messages link to people (mention pills).
const PERMALINK = "https://matrix.to/#/";

export function permalinkForUser(userId: string): string {
  return PERMALINK + userId;
}

/** The user a matrix.to link points at, or null when it is anything else (rooms, events, other sites). */
export function userIdFromPermalink(href: string): string | null {
  if (!href.startsWith(PERMALINK)) return null;
  let id = href.slice(PERMALINK.length).split("?")[0];
  try {
    id = decodeURIComponent(id);
  } catch {
    return null;
  }
  return /^@[^:\s]+:\S+$/.test(id) ? id : null;
}

import type { MatrixClient } from "matrix-js-sdk";
import { useMedia } from "../lib/media";
import { colorFor, initialOf } from "../lib/rooms";

export function Avatar({
  client,
  id,
  name,
  mxc,
  size = 40,
  presence,
}: {
  client: MatrixClient | null;
  id: string;
  name: string;
  mxc?: string | null;
  size?: number;
  /** m.presence: "online", "unavailable", "offline" (or anything a server invents) */
  presence?: string;
}) {
  const { url } = useMedia(client, mxc ? { mxc, size: size <= 48 ? 96 : 256 } : null);
  return (
    <span className="avatar" style={{ width: size, height: size, fontSize: size * 0.42, background: url ? undefined : colorFor(id) }} title={name}>
      {url ? <img src={url} alt="" /> : <span aria-hidden="true">{initialOf(name)}</span>}
      {presence && presence !== "offline" ? <span className={`presence presence-${presence}`} role="img" aria-label={presence} /> : null}
    </span>
  );
}

// Files waiting to be sent (picked, pasted or dropped): a preview of each image, name and size of the
// others, each removable, before Send uploads them (encrypted in encrypted rooms).
import { IconFile, IconX } from "../components/Icons";
import { formatBytes } from "../components/Message";

export interface PendingFile {
  id: number;
  file: File;
  /** an object URL of the image, while it waits */
  preview?: string;
}

export function AttachmentTray({ files, encrypted, onRemove }: { files: PendingFile[]; encrypted: boolean; onRemove: (id: number) => void }) {
  return (
    <div className="attachment-tray" data-testid="attachment-tray" aria-label="Files to send">
      {files.map(({ id, file, preview }) => (
        <figure key={id} className="attachment" data-testid="attachment">
          <div className="attachment-preview">
            {preview ? <img src={preview} alt="" /> : <IconFile width={28} height={28} />}
          </div>
          <figcaption>
            <span className="ellipsis">{file.name || "Pasted image"}</span>
            <span className="muted small">{formatBytes(file.size)}</span>
          </figcaption>
          <button type="button" className="icon-btn sm attachment-remove" aria-label={`Remove ${file.name}`} onClick={() => onRemove(id)}>
            <IconX width={14} height={14} />
          </button>
        </figure>
      ))}
      <span className="muted small attachment-note">{encrypted ? "Encrypted before upload" : "Not encrypted"} · Send to upload</span>
    </div>
  );
}

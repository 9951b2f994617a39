// What a file about to be sent is: its msgtype (m.image, m.video, m.audio or m.file) and the `info` the
// spec defines for it (size and mimetype; w and h; duration in ms), plus a thumbnail for videos (their
// first frame), so the receiver shows a poster before downloading the video. A file the browser can't
// decode goes as m.file: the receiver couldn't play it inline either.

export type Msgtype = "m.image" | "m.video" | "m.audio" | "m.file";

export interface Probed {
  msgtype: Msgtype;
  info: Record<string, unknown>;
  thumbnail?: { blob: Blob; info: { w: number; h: number; mimetype: string; size: number } };
}

const PROBE_TIMEOUT_MS = 8000;
const THUMB_MAX = 800;

function withTimeout<T>(p: Promise<T>, fallback: T): Promise<T> {
  return Promise.race([p, new Promise<T>((r) => setTimeout(() => r(fallback), PROBE_TIMEOUT_MS))]);
}

export function imageSize(file: Blob): Promise<{ w: number; h: number } | null> {
  return new Promise((resolve) => {
    if (typeof Image === "undefined") return resolve(null);
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      resolve({ w: img.naturalWidth, h: img.naturalHeight });
      URL.revokeObjectURL(url);
    };
    img.onerror = () => {
      resolve(null);
      URL.revokeObjectURL(url);
    };
    img.src = url;
  });
}

function mediaMetadata(file: Blob, kind: "video" | "audio"): Promise<HTMLVideoElement | HTMLAudioElement | null> {
  return new Promise((resolve) => {
    if (typeof document === "undefined") return resolve(null);
    const el = document.createElement(kind);
    el.preload = "metadata";
    el.muted = true;
    el.onloadedmetadata = () => resolve(el);
    el.onerror = () => resolve(null);
    el.src = URL.createObjectURL(file);
  });
}

/**
 * The frame a little way in (the very first is often black), scaled to at most THUMB_MAX, as JPEG. A
 * video without a known duration (a recording still being written, say) gives its first frame.
 */
function videoFrame(video: HTMLVideoElement): Promise<Probed["thumbnail"]> {
  return new Promise((resolve) => {
    const draw = () => {
      const scale = Math.min(1, THUMB_MAX / Math.max(video.videoWidth, video.videoHeight));
      const w = Math.max(1, Math.round(video.videoWidth * scale));
      const h = Math.max(1, Math.round(video.videoHeight * scale));
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d");
      if (!ctx) return resolve(undefined);
      ctx.drawImage(video, 0, 0, w, h);
      canvas.toBlob((blob) => resolve(blob ? { blob, info: { w, h, mimetype: "image/jpeg", size: blob.size } } : undefined), "image/jpeg", 0.8);
    };
    video.onerror = () => resolve(undefined);
    if (Number.isFinite(video.duration) && video.duration > 0) {
      video.onseeked = draw;
      video.currentTime = Math.min(1, video.duration / 3);
    } else if (video.readyState >= 2) {
      draw();
    } else {
      video.onloadeddata = draw;
      video.preload = "auto";
      video.load();
    }
  });
}

export async function probeFile(file: File): Promise<Probed> {
  const info: Record<string, unknown> = { mimetype: file.type || "application/octet-stream", size: file.size };
  const type = file.type;
  if (type.startsWith("image/")) {
    const dims = await withTimeout(imageSize(file), null);
    if (dims) return { msgtype: "m.image", info: { ...info, ...dims } };
    return { msgtype: "m.file", info };
  }
  if (type.startsWith("video/") || type.startsWith("audio/")) {
    const kind = type.startsWith("video/") ? "video" : "audio";
    const el = await withTimeout(mediaMetadata(file, kind), null);
    if (!el) return { msgtype: "m.file", info };
    try {
      if (Number.isFinite(el.duration)) info.duration = Math.round(el.duration * 1000);
      if (el instanceof HTMLVideoElement && el.videoWidth > 0) {
        info.w = el.videoWidth;
        info.h = el.videoHeight;
        const thumbnail = await withTimeout(videoFrame(el), undefined);
        return { msgtype: "m.video", info, thumbnail };
      }
      // audio, or a video file with no picture (a voice memo as .mp4)
      return { msgtype: "m.audio", info };
    } finally {
      URL.revokeObjectURL(el.src);
    }
  }
  return { msgtype: "m.file", info };
}

import { describe, expect, it } from "vitest";
import { formatBytes, formatDuration, linkParts, previewableUrls } from "../src/components/media/format";
import { clampScale, zoomAt } from "../src/components/media/zoom";
import { cleanPreview } from "../src/components/media/LinkPreview";
import { fileKind, nameAndCaption } from "../src/components/media/MediaBody";

describe("media formatting", () => {
  it("sizes and durations", () => {
    expect(formatBytes(3 * 1024 * 1024 * 1024)).toBe("3.0 GB");
    expect(formatDuration(75_000)).toBe("1:15");
    expect(formatDuration(3_723_000)).toBe("1:02:03");
    expect(formatDuration(400)).toBe("0:00");
  });
  it("file kinds and captions (filename with body as caption)", () => {
    expect(fileKind("report.final.PDF")).toBe("PDF");
    expect(fileKind("noext", "application/zip")).toBe("ZIP");
    expect(fileKind("noext")).toBe("FILE");
    expect(nameAndCaption({ body: "holiday.jpg" })).toEqual({ name: "holiday.jpg" });
    expect(nameAndCaption({ body: "Look at this!", filename: "holiday.jpg" })).toEqual({ name: "holiday.jpg", caption: "Look at this!" });
    expect(nameAndCaption({ body: 42 })).toEqual({ name: "file" });
  });
});

describe("links in text", () => {
  it("splits text into runs and links, leaving sentence punctuation out", () => {
    expect(linkParts("See https://example.org/a_(b). Then http://x.io, ok")).toEqual([
      { text: "See " },
      { url: "https://example.org/a_(b)" },
      { text: ". Then " },
      { url: "http://x.io" },
      { text: ", ok" },
    ]);
    expect(linkParts("(https://example.org/page)")).toEqual([{ text: "(" }, { url: "https://example.org/page" }, { text: ")" }]);
    expect(linkParts("no links")).toEqual([{ text: "no links" }]);
  });
  it("picks at most two distinct web pages to preview, not matrix.to", () => {
    expect(previewableUrls("https://a.org/#x https://a.org/ https://matrix.to/#/@bob:b.org https://b.org https://c.org")).toEqual(["https://a.org/", "https://b.org/"]);
  });
});

describe("link preview content", () => {
  it("keeps only strings it shows, mxc images, and needs a title or description", () => {
    expect(cleanPreview({ "og:title": " Hello ", "og:image": "https://evil/x.png", "og:description": 5 })).toEqual({ "og:title": "Hello", "og:description": undefined, "og:site_name": undefined, "og:image": undefined });
    expect(cleanPreview({ "og:image": "mxc://a/b" })).toBeNull();
    expect(cleanPreview({ "og:description": "d", "og:image": "mxc://a/b" })?.["og:image"]).toBe("mxc://a/b");
  });
});

describe("viewer zoom", () => {
  it("keeps the point under the cursor in place and resets at fit", () => {
    const v = zoomAt({ scale: 1, x: 0, y: 0 }, 2, { x: 100, y: 50 });
    expect(v).toEqual({ scale: 2, x: -100, y: -50 });
    // the content point that was under (100, 50) is still there: (at - t) / s is unchanged
    expect((100 - v.x) / v.scale).toBe(100);
    expect(zoomAt(v, 1, { x: 3, y: 4 })).toEqual({ scale: 1, x: 0, y: 0 });
    expect(clampScale(20)).toBe(8);
    expect(clampScale(0.2)).toBe(1);
  });
});

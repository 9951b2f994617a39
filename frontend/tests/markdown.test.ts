// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { prepareReceivedHtml, renderMarkdown } from "../src/lib/markdown";

describe("renderMarkdown", () => {
  it("leaves plain text plain", () => {
    expect(renderMarkdown("hello there")).toEqual({ body: "hello there" });
  });
  it("turns Markdown into formatted_body", () => {
    const r = renderMarkdown("this is **bold** and `code`");
    expect(r.body).toBe("this is **bold** and `code`");
    expect(r.format).toBe("org.matrix.custom.html");
    expect(r.formatted_body).toBe("this is <strong>bold</strong> and <code>code</code>");
  });
  it("never lets script through", () => {
    const r = renderMarkdown("**x** <script>alert(1)</script><img src=x onerror=alert(1)>");
    expect(r.formatted_body).not.toMatch(/script|onerror|<img/);
  });
  it("keeps lists and links", () => {
    const r = renderMarkdown("- one\n- two\n\n[site](https://example.org)");
    expect(r.formatted_body).toContain("<li>one</li>");
    expect(r.formatted_body).toContain('href="https://example.org"');
  });
});

describe("prepareReceivedHtml", () => {
  it("sanitises what others send and opens links safely", () => {
    const html = prepareReceivedHtml('<a href="javascript:alert(1)">x</a><a href="https://ok.example">ok</a><iframe src="https://evil"></iframe>');
    expect(html).not.toContain("javascript:");
    expect(html).not.toContain("iframe");
    expect(html).toContain('rel="noreferrer noopener"');
  });
});

import { afterEach, describe, expect, it, vi } from "vitest";
import { fetchWhenOnline } from "../src/lib/client";

afterEach(() => vi.unstubAllGlobals());

describe("fetchWhenOnline", () => {
  it("passes requests straight through outside crypto start-up, even offline", async () => {
    const fetchMock = vi.fn(async () => new Response("ok"));
    vi.stubGlobal("fetch", fetchMock);
    vi.spyOn(navigator, "onLine", "get").mockReturnValue(false);
    const res = await fetchWhenOnline("https://hs/_matrix/client/versions");
    expect(await res.text()).toBe("ok");
    expect(fetchMock).toHaveBeenCalledOnce();
  });
});

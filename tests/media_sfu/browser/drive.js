// Drive livekit-client in headless Chromium (fake camera/mic) for test_browser_call.py.
// argv: playwright-core path, page URL, SFU ws URL, token, seconds. Prints one JSON line per second.
const [pwPath, pageUrl, url, token, seconds, e2eeKey] = process.argv.slice(2);
const { chromium } = require(pwPath);
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(pageUrl);
    await page.evaluate(([u, t, k]) => window.startCall(u, t, k ? { e2eeKey: k } : {}), [url, token, e2eeKey || '']);
    for (let i = 0; i < Number(seconds); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const st = await page.evaluate(() => ({ log: window.state.log, err: window.state.error, v: window.videoStats() }));
      console.log(JSON.stringify(st));
    }
    await page.evaluate(() => window.room.disconnect());
  } finally {
    await browser.close();
  }
})();

// What a real browser sees through a proxy: headless Chromium opens a WebSocket through
// it, checks one echo, then waits while the caller kills the backend, and prints the
// CloseEvent the page gets (code, reason, wasClean) as one JSON line.
//
// Usage: node bench/browser.js PAGE_URL WS_URL   (run by bench/browser.sh)
// It prints "READY" once the echo came back; the caller then kills the backend.
const { chromium } = require('playwright-core');

const [pageUrl, wsUrl] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  // A page from a loopback origin: Chromium blocks WebSockets from public origins
  // (about:blank included) to loopback addresses.
  await page.goto(pageUrl);
  const opened = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    window.wsClosed = new Promise((done) => {
      ws.onclose = (e) => done({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    });
    ws.onopen = () => ws.send('hello from chromium');
    ws.onmessage = (e) => resolve({ echo: e.data, extensions: ws.extensions });
    ws.onerror = () => resolve({ error: 'the WebSocket failed to open' });
    setTimeout(() => resolve({ error: 'no echo within 5 s' }), 5000);
  }), wsUrl);
  console.log('READY');
  const closed = opened.error ? null : await page.evaluate(() => Promise.race([
    window.wsClosed,
    new Promise((done) => setTimeout(() => done({ error: 'no close within 10 s' }), 10000)),
  ]));
  console.log(JSON.stringify({ ...opened, closed }));
  await browser.close();
})().catch((e) => {
  console.log('READY');
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});

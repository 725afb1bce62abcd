// What a real browser sees through a proxy: headless Chromium opens a WebSocket through
// it, checks one echo, optionally stays quiet for IDLE_SECONDS and checks a second echo
// (does a healthy idle WebSocket survive the proxy's idle timeout?), then waits while
// the caller kills the backend, and prints the CloseEvent the page gets (code, reason,
// wasClean) as one JSON line.
//
// Usage: node bench/browser.js PAGE_URL WS_URL [IDLE_SECONDS]   (run by bench/browser.sh)
// It prints "READY" once the echoes came back; the caller then kills the backend.
const { chromium } = require('playwright-core');

const [pageUrl, wsUrl, idleArg] = process.argv.slice(2);
const idleSeconds = Number(idleArg || 0);

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
    window.ws = ws;
    window.wsClosed = new Promise((done) => {
      ws.onclose = (e) => done({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    });
    ws.onopen = () => ws.send('hello from chromium');
    ws.onmessage = (e) => {
      window.quietFrom = performance.now();
      resolve({ echo: e.data, extensions: ws.extensions });
    };
    ws.onerror = () => resolve({ error: 'the WebSocket failed to open' });
    setTimeout(() => resolve({ error: 'no echo within 5 s' }), 5000);
  }), wsUrl);
  if (idleSeconds > 0 && !opened.error) {
    // Quiet for idleSeconds (the browser still answers Pings by itself), then one more
    // message: either its echo comes back, or the CloseEvent says how the proxy ended it.
    opened.afterIdle = await page.evaluate((seconds) => Promise.race([
      window.wsClosed.then((closed) => ({ closedWhileIdle: { ...closed, afterSeconds: Math.round((performance.now() - window.quietFrom) / 100) / 10 } })),
      new Promise((done) => setTimeout(() => {
        window.ws.onmessage = (e) => done({ echo: e.data });
        window.ws.send('still there after ' + seconds + ' s');
        setTimeout(() => done({ error: 'no echo within 5 s' }), 5000);
      }, seconds * 1000)),
    ]), idleSeconds);
    if (opened.afterIdle.closedWhileIdle) {
      console.log('READY');
      console.log(JSON.stringify({ ...opened, closed: null }));
      await browser.close();
      return;
    }
  }
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

// What a real browser sees of switchyard's WebSocket guards: headless Chromium, on a
// page of an allowed origin, opens a WebSocket, checks one echo, then sends a message
// over `websocket.max_message_size`; on a page of another origin it only tries to open
// one. Prints one JSON line per page: its origin, the events in order, the CloseEvent.
//
// Usage: node bench/browser_guards.js ALLOWED_PAGE_URL OTHER_PAGE_URL WS_URL BIG_BYTES
// (run by bench/browser_guards.sh).
const { chromium } = require('playwright-core');

const [allowedPage, otherPage, wsUrl, bigArg] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const visit = async (pageUrl, big) => {
    const page = await browser.newPage();
    await page.goto(pageUrl);
    return page.evaluate(([url, big]) => new Promise((resolve) => {
      const out = { origin: location.origin, events: [] };
      const ws = new WebSocket(url);
      ws.onopen = () => { out.events.push('open'); ws.send('hello'); };
      ws.onmessage = (e) => {
        out.events.push('echo of ' + e.data.length + ' bytes');
        if (big > 0) ws.send('x'.repeat(big));
      };
      ws.onerror = () => out.events.push('error');
      ws.onclose = (e) => {
        out.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
        resolve(out);
      };
      setTimeout(() => resolve(out), 5000);
    }), [wsUrl, big]);
  };
  console.log(JSON.stringify(await visit(allowedPage, Number(bigArg))));
  console.log(JSON.stringify(await visit(otherPage, 0)));
  await browser.close();
})().catch((e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
});

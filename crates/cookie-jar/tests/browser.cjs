// Drives headless Chromium against the server of tests/browser.rs.
// Usage: NODE_PATH=$PEER_NODE_MODULES node browser.cjs PORT  (CHROMIUM_PATH must be set)
// Prints one JSON object: what the pages echoed and what the browser stored.
const { chromium } = require('playwright-core');

(async () => {
  const base = `http://127.0.0.1:${process.argv[2]}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const text = async (path) => {
      const resp = await page.goto(base + path);
      return await resp.text();
    };
    const out = {};
    await text('/set');
    out.afterSet = await context.cookies();
    out.scopedBefore = await text('/scoped/echo');
    await text('/remove');
    out.echo = await text('/echo');
    out.scopedAfter = await text('/scoped/echo');
    out.stored = await context.cookies();
    // Tamper with the signed cookie's value: the server must read it as absent.
    const uid = out.stored.find((c) => c.name === 'uid');
    await context.addCookies([{ ...uid, value: uid.value.slice(0, -1) + (uid.value.endsWith('2') ? '3' : '2') }]);
    out.tampered = await text('/echo');
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

// CHIPS in headless Chromium, for tests/browser.rs: a page on http://localhost:PORT (site A)
// frames http://127.0.0.1:PORT (site B), which sets a Partitioned cookie; prints, as a JSON
// array, the Cookie header B received at each echo step.
// Usage: NODE_PATH=$PEER_NODE_MODULES node chips.cjs PORT  (CHROMIUM_PATH must be set)
const { chromium } = require('playwright-core');

(async () => {
  const port = process.argv[2];
  const a = `http://localhost:${port}`;
  const b = `http://127.0.0.1:${port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await (await browser.newContext()).newPage();
    // The text of `target` loaded in an iframe of a page on `top`.
    const framed = async (top, target) => {
      await page.goto(`${top}/chips/frame?${target}`);
      const frame = page.frames().find((f) => f !== page.mainFrame());
      await frame.waitForLoadState('load');
      return (await frame.evaluate(() => document.body.innerText)).trim();
    };
    const topLevel = async (target) => {
      const response = await page.goto(target);
      return (await response.text()).trim();
    };
    const echoes = [];
    await framed(a, `${b}/chips/set?v=a`);
    echoes.push(await framed(a, `${b}/chips/echo`));
    echoes.push(await topLevel(`${b}/chips/echo`));
    echoes.push(await framed(b, `${b}/chips/echo`));
    await topLevel(`${b}/chips/set?v=b`);
    echoes.push(await topLevel(`${b}/chips/echo`));
    echoes.push(await framed(a, `${b}/chips/echo`));
    console.log(JSON.stringify(echoes));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

// Headless Chromium (playwright-core) on the showcase's docs and metrics, reached as a user
// reaches them: from the landing page's rows. /docs/ shows one visible card heading per
// crate and nothing wider than the window; a crate's README page shows its sections and
// tables that fit; /metrics is the Prometheus text. Writes three screenshots.
// Usage: node docs_browser.js http://127.0.0.1:PORT DOCS.png README.png METRICS.png
//        (NODE_PATH and CHROMIUM_PATH set)
"use strict";
const { chromium } = require("playwright-core");

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function fitsTheWindow(page, what) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  check(scroll <= client + 1, what + " is wider than the window: " + scroll + " > " + client);
}

const [base, docsShot, readmeShot, metricsShot] = process.argv.slice(2);
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const failed = [];
    page.on("requestfailed", (request) => failed.push(request.url()));
    page.on("request", (request) => {
      if (!request.url().startsWith(base)) failed.push("outside: " + request.url());
    });

    await page.goto(base + "/");
    for (const id of ["docs", "metrics"]) {
      const status = (await page.locator("#" + id + " .status").textContent()).trim();
      check(status === "live", "the " + id + " row is not live: " + status);
    }
    await Promise.all([page.waitForNavigation(), page.locator('#docs a[href="/docs/"]').click()]);
    check(page.url() === base + "/docs/", "not on /docs/: " + page.url());
    const title = page.locator("h1");
    check(await title.isVisible(), "no visible title");
    check((await title.textContent()) === "Crate documentation", "title: " + (await title.textContent()));
    const headings = page.locator("section.card > h2");
    const count = await headings.count();
    check(count >= 8, "only " + count + " crate headings");
    for (let i = 0; i < count; i++) {
      const heading = headings.nth(i);
      await heading.scrollIntoViewIfNeeded();
      check(await heading.isVisible(), "crate heading " + i + " is not visible");
      const box = await heading.boundingBox();
      check(box && box.height > 10 && box.width > 10, "crate heading " + i + " has no size");
    }
    await fitsTheWindow(page, "/docs/");
    // The usage snippet opens.
    const ws = page.locator("section#ws-core");
    await ws.locator("summary").click();
    check(await ws.locator("details pre").isVisible(), "the ws-core usage does not open");
    check((await ws.locator("details pre").textContent()).includes("use ws_core::"), "no ws-core usage");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: docsShot, fullPage: true });

    // A README, from its card.
    await Promise.all([page.waitForNavigation(), ws.locator('h2 a[href="/docs/ws-core"]').click()]);
    check((await page.locator("h1").textContent()) === "ws-core README", "README title");
    const sections = await page.locator("article.readme h2").allTextContents();
    check(sections.includes("What is in it"), "README sections: " + sections);
    for (const h2 of await page.locator("article.readme h2").all()) {
      await h2.scrollIntoViewIfNeeded();
      check(await h2.isVisible(), "a README heading is hidden");
    }
    await fitsTheWindow(page, "the ws-core README");
    const hub = page.locator('article.readme a[href*="docs.rs/ws-core"]').first();
    check(await hub.count() === 1, "no intra-doc link to docs.rs");
    check((await page.locator("#back").getAttribute("href")) === "/", "no way back");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: readmeShot, fullPage: false });

    // The metrics, from the landing page.
    await page.goto(base + "/");
    const [response] = await Promise.all([
      page.waitForNavigation(),
      page.locator('#metrics a[href="/metrics"]').click(),
    ]);
    check(response.status() === 200, "metrics status " + response.status());
    check(response.headers()["content-type"] === "text/plain; version=0.0.4; charset=utf-8",
      "metrics type " + response.headers()["content-type"]);
    const text = await page.locator("body").innerText();
    for (const line of ["# TYPE showcase_http_requests_total counter",
                        "# TYPE showcase_http_request_duration_seconds histogram",
                        // The pages just read (/docs/ is the showcase's own: app "/").
                        'showcase_http_requests_total{app="/",method="GET",status_class="2xx"}']) {
      check(text.includes(line), "metrics without " + line);
    }
    await page.screenshot({ path: metricsShot, fullPage: false });
    check(failed.length === 0, "requests failed or left the server: " + failed.join(", "));
    console.log("docs and metrics in Chromium: all checks passed");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

// Shared by the browser scripts: headless Chromium (playwright-core; NODE_PATH and
// CHROMIUM_PATH set) on the showcase's landing page, with one row checked as a user reads
// it: live, two curl samples that name this host and fit their boxes in readable text.
"use strict";
const { chromium } = require("playwright-core");

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Opens BASE/, checks row `id` whose samples start with `sampleStart`, scrolls it into view
// and hands `(page, row, samples)` to `body`; exits 1 with the error on any failure.
function withLandingRow(base, id, sampleStart, body) {
  (async () => {
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      await page.goto(base + "/");
      const row = page.locator("#" + id);
      check((await row.locator(".status").textContent()).trim() === "live", "the " + id + " row is not live");
      const samples = await row.locator("pre.curl code").allTextContents();
      check(samples.length === 2, "expected two curl samples, got " + samples.length);
      for (const sample of samples) {
        check(sample.startsWith(sampleStart), "sample without the host: " + sample);
      }
      // Every sample is on screen and readable: not clipped, at least 10 px text.
      for (const box of await row.locator("pre.curl").evaluateAll((pres) =>
        pres.map((pre) => ({ scroll: pre.scrollWidth, client: pre.clientWidth, font: parseFloat(getComputedStyle(pre).fontSize) })))) {
        check(box.scroll <= box.client + 1, "a curl sample overflows its box");
        check(box.font >= 10, "curl sample text too small: " + box.font);
      }
      await row.scrollIntoViewIfNeeded();
      await body(page, row, samples);
    } finally {
      await browser.close();
    }
  })().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}

module.exports = { check, withLandingRow };

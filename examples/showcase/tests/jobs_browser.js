// Headless Chromium (playwright-core) on the showcase: the landing page's jobs row is live
// and its samples name this host; its link opens the task queue's page, where a user
// enqueues an echo job (it succeeds), a flaky one (it retries, then succeeds) and a failing
// one (it lands in the dead letters after 3 attempts), then re-drives the dead letters.
// Writes a screenshot of the row and one of the queue's page.
// Usage: node jobs_browser.js http://127.0.0.1:PORT ROW.png PAGE.png
//        (NODE_PATH and CHROMIUM_PATH set)
"use strict";
const { check, withLandingRow } = require("./landing_row.js");

const [base, rowShot, pageShot] = process.argv.slice(2);
withLandingRow(base, "jobs", "curl -s " + base + "/jobs/jobs ", async (page, row) => {
  await row.screenshot({ path: rowShot });

  // The page link, as a user clicks it.
  await Promise.all([page.waitForNavigation(), row.locator('a[href="/jobs/"]').click()]);
  check(page.url() === base + "/jobs/", "not on the queue's page: " + page.url());
  await page.locator("#broker", { hasText: "embedded" }).waitFor();
  check((await page.locator("#inbox").textContent()) === "memory", "inbox not shown");

  const clearResult = () => page.evaluate(() => { document.getElementById("result").textContent = ""; });
  const enqueue = async (kind, payload) => {
    await page.selectOption("#kind", kind);
    if (payload !== undefined) await page.fill("#payload", payload);
    await clearResult();
    await page.click("button[type=submit]");
    await page.locator("#result", { hasText: "202 Accepted" }).waitFor();
    const text = await page.locator("#result").textContent();
    const id = text.match(/job ([0-9a-f-]{36})/)[1];
    return id;
  };
  const jobRow = (id) => page.locator("#jobs tr", { hasText: id });
  const echo = await enqueue("echo", '{"hello": "browser"}');
  await jobRow(echo).locator(".state.succeeded").waitFor({ timeout: 10000 });
  const flaky = await enqueue("flaky");
  const failing = await enqueue("fail");
  // flaky: fails twice (1 s, then 2 s backoff), then succeeds on attempt 3.
  await jobRow(flaky).locator(".state.succeeded").waitFor({ timeout: 15000 });
  check((await jobRow(flaky).locator("td").nth(3).textContent()).trim() === "3", "flaky attempts");
  const deadRow = page.locator("#dead tr", { hasText: failing });
  await deadRow.waitFor({ timeout: 15000 });
  check((await deadRow.textContent()).includes("nacked on delivery 3 of at most 3"), "dead letter reason");
  // The page refreshes the jobs table and then the dead letters, a second apart at most:
  // the dead letter can show before the table's next refresh says "dead".
  await jobRow(failing).locator(".state.dead").waitFor({ timeout: 5000 });
  check((await jobRow(failing).locator(".state").textContent()) === "dead", "failing job not dead");

  // The same key twice: one job.
  await page.fill("#key", "browser-key");
  const keyed = await enqueue("echo", '{"n": 1}');
  await clearResult();
  await page.click("button[type=submit]");
  await page.locator("#result", { hasText: "200 OK" }).waitFor();
  check((await page.locator("#result").textContent()).includes(keyed), "the key gave another job");
  await page.fill("#key", "");

  // A payload that is not JSON is refused in the page; a bad kind payload by the server.
  await page.selectOption("#kind", "sleep");
  await page.fill("#payload", '{"ms": -5}');
  await clearResult();
  await page.click("button[type=submit]");
  await page.locator("#result", { hasText: "422" }).waitFor();

  await page.screenshot({ path: pageShot, fullPage: true });

  // The way back to the landing page.
  check(await page.locator("#back").isVisible(), "no way back to the landing page");
  check((await page.locator("#back").evaluate((a) => a.href)) === base + "/", "the way back goes elsewhere");

  await page.click("#redrive");
  await page.locator("#redriven", { hasText: "1 re-driven" }).waitFor();
  console.log("landing page jobs row and queue page: all checks passed");
});

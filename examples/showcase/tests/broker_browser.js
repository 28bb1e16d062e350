// Headless Chromium (playwright-core) on the showcase: the landing page's broker row is
// live and its samples name this host; its link opens /broker/, which, before login, says
// so with a link to log in. After signing up at /auth/, the page subscribes to demo.>,
// publishes and sees the delivery arrive over the WebSocket; a publish outside the allow-list and data
// that is not JSON are refused with readable errors; a job that fails its 3 attempts ends
// in the dead letters and, re-driven, succeeds. Writes screenshots of the row, the
// logged-out page, the page with a refusal shown, and the page after the job.
// Usage: node broker_browser.js http://127.0.0.1:PORT ROW.png LOGGED_OUT.png PAGE.png JOB.png
//        (NODE_PATH and CHROMIUM_PATH set)
"use strict";
const { check, withLandingRow } = require("./landing_row.js");

const [base, rowShot, loggedOutShot, pageShot, jobShot] = process.argv.slice(2);
withLandingRow(base, "broker", "curl -s " + base + "/broker/", async (page, row) => {
  await row.screenshot({ path: rowShot });

  // The page link, as a user clicks it: not logged in yet.
  await Promise.all([page.waitForNavigation(), row.locator('a[href="/broker/"]').click()]);
  check(page.url() === base + "/broker/", "not on the broker page: " + page.url());
  const error = page.locator("#error");
  await error.filter({ hasText: "not logged in" }).waitFor();
  check((await error.locator("a").getAttribute("href")) === "/auth/", "no link to log in");
  check(await page.locator("#publish button[type=submit]").isDisabled(), "publish enabled while logged out");
  check(await page.locator("#back").isVisible(), "no way back to the landing page");
  check((await page.locator("#back").evaluate((a) => a.href)) === base + "/", "the way back goes elsewhere");
  await page.screenshot({ path: loggedOutShot, fullPage: true });

  // Log in through the error's link: sign up at /auth/.
  await Promise.all([page.waitForNavigation(), error.locator("a").click()]);
  const signup = page.locator('form[action="/auth/signup"]');
  await signup.locator('input[name="username"]').fill("grace");
  await signup.locator('input[name="password"]').fill("correct horse battery");
  await Promise.all([page.waitForNavigation(), signup.locator("button").click()]);
  check((await page.textContent("body")).includes("Logged in as grace"), "sign-up failed");

  await page.goto(base + "/broker/");
  await page.locator("#status", { hasText: "Connected as grace" }).waitFor();
  check((await page.locator("#may-publish").textContent()).includes("demo.>"), "allow-list not shown");

  await page.fill("#pattern", "demo.>");
  await page.click("#subscribe button[type=submit]");
  await page.locator("#subscriptions code", { hasText: "demo.>" }).waitFor();

  await page.fill("#subject", "demo.greetings");
  await page.fill("#data", '{"text": "hello from chromium"}');
  await page.click("#publish button[type=submit]");
  const delivery = page.locator("#deliveries tr", { hasText: "demo.greetings" });
  await delivery.waitFor({ timeout: 10000 });
  const text = await delivery.textContent();
  check(text.includes("hello from chromium") && text.includes("grace"), "delivery row: " + text);
  check(await error.isHidden(), "an error is shown after a good publish");

  // Outside the allow-list: refused, and said so.
  await page.fill("#subject", "admin.shutdown");
  await page.click("#publish button[type=submit]");
  await error.filter({ hasText: "may not publish to" }).waitFor();
  check((await error.textContent()).includes("admin.shutdown"), "the refusal does not name the subject");
  check((await page.locator("#deliveries tr", { hasText: "admin.shutdown" }).count()) === 0, "refused message delivered");
  // Data that is not JSON: refused in the page.
  await page.fill("#subject", "demo.greetings");
  await page.fill("#data", "{not json");
  await page.click("#publish button[type=submit]");
  await error.filter({ hasText: "The data is not JSON" }).waitFor();
  // Subscribing wider than allowed.
  await page.fill("#pattern", ">");
  await page.click("#subscribe button[type=submit]");
  await error.filter({ hasText: "may not subscribe" }).waitFor();
  const box = await error.boundingBox();
  check(box && box.height > 10 && box.width > 300, "the error box is not readable");
  check(parseFloat(await error.evaluate((e) => getComputedStyle(e).fontSize)) >= 12, "error text too small");
  await page.screenshot({ path: pageShot, fullPage: true });

  // The failing job: retries, dead letters, re-drive.
  await page.click("#job-start");
  await page.locator("#job-state.dead").waitFor({ timeout: 20000 });
  const log = await page.locator("#job-log").textContent();
  check(log.includes("retrying"), "no retries seen: " + log);
  check(log.includes("dead after 3 attempts"), "not dead after 3 attempts: " + log);
  await page.click("#job-redrive");
  await page.locator("#job-state.succeeded").waitFor({ timeout: 20000 });
  check((await page.locator("#job-log").textContent()).includes("succeeded after 4 attempts"), "re-driven job did not succeed");
  await page.locator("#jobs").scrollIntoViewIfNeeded();
  await page.screenshot({ path: jobShot });

  console.log("landing page broker row and broker page: all checks passed");
});

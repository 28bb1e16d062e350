// Headless Chromium (playwright-core) on the showcase's pages as a user meets them (issue 22,
// items 9, 11, 13): the landing page's curl samples carry the address the browser came in on;
// the chat works under the pages' content policy; the cookies page keeps a note through a
// rotation, says why a note is lost once its key is retired, and refuses another site's form
// with a readable page and a way back; no showcase page can be framed by another site.
// Usage: node pages_browser.js http://127.0.0.1:PORT SCREENSHOT_DIR
//        (NODE_PATH and CHROMIUM_PATH set)
"use strict";
const path = require("path");
const { chromium } = require("playwright-core");

function check(condition, message) {
  if (!condition) throw new Error(message);
}

(async () => {
  const base = process.argv[2];
  const shots = process.argv[3];
  const shot = (page, name, fullPage) => page.screenshot({ path: path.join(shots, name), fullPage: !!fullPage });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const violations = [];
    page.on("console", (message) => {
      if (message.type() === "error") violations.push(message.text());
    });

    // The landing page, opened by name: every curl sample says http://localhost:PORT.
    const byName = base.replace("127.0.0.1", "localhost");
    await page.goto(byName + "/");
    const samples = await page.locator("code").allTextContents();
    const curls = samples.filter((sample) => sample.startsWith("curl "));
    check(curls.length >= 6, "curl samples: " + curls.length);
    for (const sample of curls) {
      check(sample.includes(byName + "/"), "a sample without the host: " + sample);
    }
    await page.locator("#rest").scrollIntoViewIfNeeded();
    await shot(page, "landing-rest.png");

    // The chat under the pages' content policy: the socket opens (connect-src 'self').
    await page.goto(base + "/chat/");
    await page.fill("#name", "Zoë 😀");
    await page.click("#connect");
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("in lobby as Zoë 😀"));
    check(await page.isVisible("#back"), "no way back to the showcase from the chat");

    // The cookies page: a note survives a rotation (sealed again), ...
    await page.goto(base + "/cookies/");
    await page.fill("input[name=note]", "meet at noon");
    await Promise.all([page.waitForNavigation(), page.click("text=Keep the note")]);
    check((await page.textContent("#note")) === "meet at noon", "note: " + await page.textContent("#note"));
    await Promise.all([page.waitForNavigation(), page.click("text=Rotate the keys")]);
    await page.waitForSelector("text=sealed again with the current one");
    await shot(page, "cookies-resealed.png", true);
    check((await page.textContent("#note")) === "meet at noon", "the note did not survive a rotation");
    // ... and once its key has left the ring, the page says so. Two rotations without a
    // visit in between: the page's own form, posted twice from the page.
    await page.evaluate(async () => {
      const csrf = document.querySelector("input[name=csrf]").value;
      for (let i = 0; i < 2; i++) {
        const response = await fetch("/cookies/rotate", { method: "POST", body: new URLSearchParams({ csrf }), redirect: "manual" });
        if (response.type !== "opaqueredirect") throw new Error("rotate: " + response.status);
      }
    });
    await page.reload();
    const retired = await page.locator(".remark").allTextContents();
    check(retired.some((remark) => remark.includes("the key that sealed it was retired by rotation 3")), "remarks: " + retired.join(" | "));
    check((await page.textContent("#note")).includes("unreadable"), "note: " + await page.textContent("#note"));
    await shot(page, "cookies-retired.png", true);

    // Another site's form posting to /cookies/rotate: refused, in words, with a way back.
    const attacker = await browser.newPage({ viewport: { width: 900, height: 600 } });
    await attacker.setContent(
      '<form method=post action="' + base + '/cookies/rotate"><input name=csrf value=forged><button>win a prize</button></form>');
    await Promise.all([attacker.waitForNavigation(), attacker.click("button")]);
    check((await attacker.textContent("h1")).startsWith("Refused"), "the cross-site form was not refused");
    check((await attacker.textContent("#error")).includes("Nothing was changed"), "no reason given");
    await shot(attacker, "cookies-csrf-refused.png");
    await Promise.all([attacker.waitForNavigation(), attacker.click("text=Open the cookies page again")]);
    check(attacker.url() === base + "/cookies/", "the way back leads to " + attacker.url());
    check((await attacker.textContent("body")).includes("rotated 3 times"), "the refused form rotated the keys");

    // Framing: another site's page cannot show the showcase's pages in a frame.
    for (const target of ["/", "/cookies/", "/auth/", "/chat/"]) {
      const framer = await browser.newPage();
      await framer.setContent('<iframe id=f src="' + base + target + '" width=600 height=400></iframe>');
      await framer.waitForTimeout(500);
      // A refused frame holds the browser's error page instead of ours.
      const frame = framer.frames().find((f) => f !== framer.mainFrame());
      const origin = frame ? await frame.evaluate(() => location.origin).catch(() => "none") : "none";
      check(origin !== base, target + " was shown in another site's frame (" + (frame && frame.url()) + ")");
      await framer.close();
    }

    // The other pages load and run their inline script and style under the policy.
    for (const target of ["/graphql/", "/auth/", "/oauth-login/", "/oauth/"]) {
      const response = await page.goto(base + target);
      check(response.status() === 200, target + " answered " + response.status());
      await page.waitForLoadState("networkidle");
    }

    const csp = violations.filter((text) => text.includes("Content Security Policy"));
    check(csp.length === 0, "CSP violations on the showcase's own pages: " + csp.join(" | "));
    console.log("showcase pages in Chromium: all checks passed");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

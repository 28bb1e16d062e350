// Headless Chromium (playwright-core) on the showcase's login pages as a user meets them
// (issue 22, item 6): /auth/, /oauth-login/ and the provider at /oauth/ share one look with
// the way back to the landing page and are titled by feature; every refusal (a weak
// password, a wrong one, throttling, another site's form, a denied consent) is a page with
// the reason in it, the status code kept, and a link back to the form; the API token is
// shown with copy buttons and a curl command that works as written.
// Usage: node auth_browser.js http://127.0.0.1:PORT SCREENSHOT.png...
//        (one path per screenshot, named by its last part; NODE_PATH and CHROMIUM_PATH set)
"use strict";
const path = require("path");
const { execFileSync } = require("child_process");
const { chromium } = require("playwright-core");

function check(condition, message) {
  if (!condition) throw new Error(message);
}

(async () => {
  const base = process.argv[2];
  const shots = process.argv.slice(3);
  const shot = (page, name, fullPage) => {
    const file = shots.find((p) => path.basename(p).endsWith(name));
    check(file, "no screenshot path given for " + name);
    return page.screenshot({ path: file, fullPage: !!fullPage });
  };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    const page = await context.newPage();
    const pageErrors = [];
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error" && /Content Security Policy/.test(message.text())) pageErrors.push(message.text());
    });
    // Submits a form of the page by clicking `button`; returns the response of the navigation.
    const submit = async (button) => {
      const [response] = await Promise.all([page.waitForNavigation(), page.click(button)]);
      return response;
    };
    // A refusal page: its status, heading, reason and the way back to the form.
    const refusal = async (response, status, heading, reason, name) => {
      check(response.status() === status, heading + ": status " + response.status() + ", not " + status);
      check((await page.textContent("h1")) === heading, "heading: " + (await page.textContent("h1")));
      const error = await page.textContent("#error");
      check(error.includes(reason), "the reason is not in the page: " + error);
      check(await page.isVisible("#again"), "no link back to the form");
      check(await page.isVisible("header a#back"), "no way back to the showcase");
      await shot(page, name);
    };
    const common = async () => {
      const title = await page.title();
      check(!/auth-login|oauth-login|oauth-provider|backend-kit provider/.test(title), "a crate name as the title: " + title);
      check((await page.getAttribute("header a#back", "href")) === "/", "the header does not lead to the landing page");
    };

    // Password login: the home page.
    await page.goto(base + "/auth/");
    check((await page.title()) === "Password login and API tokens", "title: " + (await page.title()));
    await common();
    await shot(page, "auth-home.png");

    // A weak password (the browser's own check is what most users meet; skip it to see the
    // server's): 422 in the page, and the way back.
    await page.evaluate(() => document.querySelectorAll("form").forEach((form) => (form.noValidate = true)));
    await page.fill("form[action='/auth/signup'] input[name=username]", "grace");
    await page.fill("form[action='/auth/signup'] input[name=password]", "password");
    await refusal(await submit("form[action='/auth/signup'] button"), 422, "Sign-up failed", "at least 15 characters", "auth-weak-password.png");
    await common();
    await submit("#again");
    check(page.url() === base + "/auth/", "the way back from the sign-up refusal leads to " + page.url());

    // Sign up for real, then an API token.
    await page.fill("form[action='/auth/signup'] input[name=username]", "grace");
    await page.fill("form[action='/auth/signup'] input[name=password]", "cobol compilers rock");
    await submit("form[action='/auth/signup'] button");
    check((await page.textContent("main")).includes("Logged in as grace"), "not logged in after sign-up");
    const tokenPage = await submit("text=Get an API token");
    check(tokenPage.status() === 200, "the token page answered " + tokenPage.status());
    check(tokenPage.headers()["cache-control"] === "no-store", "the token page may be cached");
    check((await page.title()) === "Your API token", "title: " + (await page.title()));
    const token = (await page.textContent("#token")).trim();
    check(/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token), "not a JWT: " + token);
    const curl = (await page.textContent("#curl")).trim();
    check(curl.includes(base + "/auth/api/me") && curl.includes("Bearer " + token), "curl: " + curl);
    await page.click("button[data-copy=token]");
    await page.waitForSelector("text=Copied.");
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    check(copied === token, "the clipboard holds " + copied);
    await shot(page, "auth-token.png", true);
    // The command works as written.
    const me = JSON.parse(execFileSync("sh", ["-c", curl], { encoding: "utf8" }));
    check(me.user === "grace", "the curl command answered " + JSON.stringify(me));
    await submit("#again");
    check(page.url() === base + "/auth/", "the way back from the token page leads to " + page.url());
    await submit("text=Log out");

    // A wrong password: 401, in words.
    const login = async (password) => {
      await page.fill("form[action='/auth/login'] input[name=username]", "grace");
      await page.fill("form[action='/auth/login'] input[name=password]", password);
      return submit("form[action='/auth/login'] button");
    };
    await refusal(await login("not my password"), 401, "Login failed", "Wrong user name or password", "auth-wrong-password.png");
    // Throttled after five failures: 429 with how long to wait (Retry-After kept).
    let response;
    for (let attempt = 0; attempt < 6; attempt++) {
      await page.goto(base + "/auth/");
      response = await login("still not my password");
      if (response.status() === 429) break;
    }
    check(response.headers()["retry-after"], "no Retry-After on the throttled page");
    await refusal(response, 429, "Login failed", "try again in", "auth-throttled.png");
    await submit("#again");
    check(page.url() === base + "/auth/", "the way back from throttling leads to " + page.url());

    // Another site's form (no token): 403, in words, with the way back.
    const attacker = await context.newPage();
    await attacker.setContent('<form method=post action="' + base + '/auth/login"><input name=username value=grace>' +
      '<input name=password value=x><button>win a prize</button></form>');
    const [forged] = await Promise.all([attacker.waitForNavigation(), attacker.click("button")]);
    check(forged.status() === 403, "another site's form answered " + forged.status());
    check((await attacker.textContent("h1")) === "Form refused", "heading: " + (await attacker.textContent("h1")));
    check((await attacker.textContent("#error")).includes("security token"), "no reason for the CSRF refusal");
    await attacker.screenshot({ path: shots.find((p) => p.endsWith("auth-csrf-refused.png")) });
    await Promise.all([attacker.waitForNavigation(), attacker.click("#again")]);
    check(attacker.url() === base + "/auth/", "the way back from the CSRF refusal leads to " + attacker.url());
    await attacker.close();

    // Log in with the showcase's provider: the client's page, the provider's login form.
    await page.goto(base + "/oauth-login/");
    check((await page.title()) === "Log in with an OAuth 2.0 provider", "title: " + (await page.title()));
    await common();
    await shot(page, "oauth-login-home.png");
    await submit("#start");
    check(new URL(page.url()).pathname === "/oauth/authorize", "the login did not go to the provider: " + page.url());
    const authorizeUrl = page.url();
    check((await page.title()) === "Log in to the OAuth 2.0 provider", "title: " + (await page.title()));
    await common();
    await page.fill("input[name=username]", "alice");
    await page.fill("input[name=password]", "wrong-rabbit");
    await refusal(await submit("form button"), 401, "Login failed", "Wrong user name or password", "oauth-provider-wrong-password.png");
    // Back to the same sign-in request's form.
    await submit("#again");
    check(page.url() === authorizeUrl, "the way back leads to " + page.url() + ", not the sign-in request");
    await page.fill("input[name=username]", "alice");
    await page.fill("input[name=password]", "wonderland-rabbit");
    await submit("form button");
    check((await page.title()) === "Allow access to your account?", "title: " + (await page.title()));
    check((await page.textContent("main")).includes("demo-app asks for"), "the consent page does not name the client");
    await shot(page, "oauth-consent.png");
    // Deny: the client's callback says so, in the page, with a way to start again.
    await refusal(await submit("button[value=deny]"), 403, "Login with the provider failed", "You did not allow this application", "oauth-denied.png");
    await common();
    await submit("#again");
    check(page.url() === base + "/oauth-login/", "the way back from the denial leads to " + page.url());
    // Start again and allow: logged in.
    await submit("#start");
    await submit("button[value=allow]");
    check(page.url() === base + "/oauth-login/", "after consent: " + page.url());
    check((await page.textContent("main")).includes("Logged in as alice"), "not logged in with the provider");
    await shot(page, "oauth-logged-in.png");
    // A refused refresh form from another site: the client's pages refuse in words too.
    const stale = await context.newPage();
    await stale.setContent('<form method=post action="' + base + '/oauth-login/refresh"><button>refresh</button></form>');
    const [staleResponse] = await Promise.all([stale.waitForNavigation(), stale.click("button")]);
    check(staleResponse.status() === 403, "a form without its token answered " + staleResponse.status());
    check((await stale.textContent("h1")) === "Form refused", "heading: " + (await stale.textContent("h1")));
    check((await stale.textContent("#error")).includes("security token"), "no reason: " + (await stale.textContent("#error")));
    await stale.close();

    check(pageErrors.length === 0, "errors on the pages: " + pageErrors.join(" | "));
    console.log("login pages in Chromium: all checks passed");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

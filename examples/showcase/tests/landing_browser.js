// Headless Chromium (playwright-core) on the showcase's landing page: the SOAP row is live,
// its curl samples name this host, its WSDL link opens the WSDL whose soap:address is the
// mount, Back returns to the page, and the first sample's envelope, sent from the page,
// gets the stock. Writes a screenshot of the page to the path given.
// Usage: node landing_browser.js http://127.0.0.1:PORT SCREENSHOT.png
//        (NODE_PATH and CHROMIUM_PATH set)
"use strict";
const { check, withLandingRow } = require("./landing_row.js");

const [base, screenshot] = process.argv.slice(2);
withLandingRow(base, "soap", "curl -s " + base + "/soap/soap ", async (page, row, samples) => {
  await page.screenshot({ path: screenshot, fullPage: true });

  // The WSDL link, as a user clicks it.
  const [response] = await Promise.all([
    page.waitForNavigation(),
    row.locator('a[href="/soap/soap?wsdl"]').click(),
  ]);
  check(response.status() === 200, "WSDL status " + response.status());
  const wsdl = await response.text();
  const address = 'location="' + base + '/soap/soap"';
  check(wsdl.split(address).length - 1 === 2, "soap:address is not the mount: " + wsdl.slice(-600));
  // A way back.
  await page.goBack();
  check(page.url() === base + "/", "Back did not return to the landing page: " + page.url());
  await page.locator("#soap").waitFor();

  // The first sample's request, sent from the page (same origin).
  const reply = await page.evaluate(async (sample) => {
    const body = sample.match(/-d '([^']*)'/)[1];
    const headers = {};
    for (const [, name, value] of sample.matchAll(/-H '([^:]+): ([^']*)'/g)) headers[name] = value;
    const response = await fetch("/soap/soap", { method: "POST", headers, body });
    return { status: response.status, text: await response.text() };
  }, samples[0]);
  check(reply.status === 200, "SOAP status " + reply.status + ": " + reply.text);
  check(reply.text.includes("<available>25</available>"), "no stock in " + reply.text);
  console.log("landing page SOAP row: all checks passed");
});

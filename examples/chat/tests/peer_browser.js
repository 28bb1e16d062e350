// Headless Chromium (playwright-core) on the chat page: two pages join one room,
// exchange messages, see each other's presence and permessage-deflate negotiated.
// Usage: node peer_browser.js http://127.0.0.1:PORT   (NODE_PATH and CHROMIUM_PATH set)
"use strict";
const { chromium } = require("playwright-core");

async function open(browser, base, name) {
  const page = await browser.newPage();
  await page.goto(base + "/");
  await page.fill("#name", name);
  await page.fill("#room", "browsers");
  await page.click("#connect");
  await page.waitForFunction(() => window.chatSocket && window.chatSocket.readyState === 1);
  return page;
}

(async () => {
  const base = process.argv[2];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const ada = await open(browser, base, "ada");
    const bob = await open(browser, base, "bob");
    const extensions = await ada.evaluate(() => window.chatSocket.extensions);
    if (!extensions.includes("permessage-deflate")) throw new Error("no deflate: " + extensions);
    const protocol = await ada.evaluate(() => window.chatSocket.protocol);
    if (protocol !== "chat.v1") throw new Error("protocol " + protocol);
    // Presence: ada sees bob join, and both are listed.
    await ada.waitForFunction(() => document.querySelector("#log").textContent.includes("bob joined browsers"));
    await ada.waitForFunction(() => document.querySelector("#members").textContent.includes("bob"));
    // Messages both ways; a long one is compressed on the wire.
    await ada.fill("#text", "hello from ada " + "la".repeat(500));
    await ada.click("#say button");
    await bob.waitForFunction(() => document.querySelector("#log").textContent.includes("ada: hello from ada"));
    await bob.fill("#text", "hi ada");
    await bob.click("#say button");
    await ada.waitForFunction(() => document.querySelector("#log").textContent.includes("bob: hi ada"));
    // Leave: ada sees bob leave.
    await bob.close();
    await ada.waitForFunction(() => document.querySelector("#log").textContent.includes("bob left browsers"));
    console.log("browser peer: all checks passed (extensions: " + extensions + ")");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

// Headless Chromium (playwright-core) on the chat page: two pages join one room,
// exchange messages, see each other's presence and permessage-deflate negotiated.
// Usage: node peer_browser.js http://127.0.0.1:PORT [BOB_ORIGIN ROOM]
//   (NODE_PATH and CHROMIUM_PATH set); with BOB_ORIGIN, bob's page is served by another
//   instance on the same Redis, and ada must see his join and leave live all the same.
"use strict";
const { chromium } = require("playwright-core");

async function open(browser, base, name, room) {
  const page = await browser.newPage();
  await page.goto(base + "/");
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#connect");
  await page.waitForFunction(() => window.chatSocket && window.chatSocket.readyState === 1);
  return page;
}

(async () => {
  const base = process.argv[2];
  const bobBase = process.argv[3] || base;
  const room = process.argv[4] || "browsers";
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const ada = await open(browser, base, "ada", room);
    const bob = await open(browser, bobBase, "bob", room);
    const extensions = await ada.evaluate(() => window.chatSocket.extensions);
    if (!extensions.includes("permessage-deflate")) throw new Error("no deflate: " + extensions);
    const protocol = await ada.evaluate(() => window.chatSocket.protocol);
    if (protocol !== "chat.v1") throw new Error("protocol " + protocol);
    // Presence: ada sees bob join, and both are listed.
    await ada.waitForFunction((room) => document.querySelector("#log").textContent.includes("bob joined " + room), room);
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
    await ada.waitForFunction((room) => document.querySelector("#log").textContent.includes("bob left " + room), room);
    // Exactly once.
    const lefts = await ada.evaluate((room) => document.querySelector("#log").textContent.split("bob left " + room).length - 1, room);
    if (lefts !== 1) throw new Error("bob left announced " + lefts + " times");
    console.log("browser peer: all checks passed (extensions: " + extensions + ")");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

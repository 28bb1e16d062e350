// Headless Chromium (playwright-core) on the chat page as a user meets it (issue 22, items 1
// and 2): the layout at desktop and phone width, a nickname with an accent and an emoji kept
// whole and refused when taken in the room, a long word wrapped, a message over the limit
// refused in the page before sending, direct messages from the member list, and the page
// reconnecting (and rejoining the room) when the server closes the socket.
// Usage: node chat_ui_browser.js http://127.0.0.1:PORT SCREENSHOT_DIR
//        (NODE_PATH and CHROMIUM_PATH set)
"use strict";
const path = require("path");
const { chromium } = require("playwright-core");

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const text = (page, selector) => page.locator(selector).textContent();

async function join(page, name, room) {
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#connect");
}

async function joined(page, room) {
  await page.waitForFunction((room) => document.querySelector("#status").textContent.startsWith("in " + room + " as "), room);
}

(async () => {
  const base = process.argv[2];
  const shots = process.argv[3];
  const shot = (page, name) => page.screenshot({ path: path.join(shots, name) });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const errors = [];
    const zoe = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    zoe.on("pageerror", (error) => errors.push(String(error)));
    zoe.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
    zoe.on("response", (response) => { if (response.status() >= 400) errors.push(response.status() + " " + response.url()); });
    await zoe.goto(base);

    // Layout: a compact header and input row; the log takes the rest.
    const box = async (page, selector) => page.locator(selector).boundingBox();
    const header = await box(zoe, "header");
    const footer = await box(zoe, "footer");
    const log = await box(zoe, "#log");
    check(header.height <= 60, "header is " + header.height + " px tall");
    check(footer.height <= 60, "input row is " + footer.height + " px tall");
    check(log.height >= 600, "the log has only " + log.height + " px of 800");

    // A nickname with an accent and an emoji stays whole.
    await join(zoe, "Zoë 😀", "ui");
    await joined(zoe, "ui");
    check((await text(zoe, "#status")).includes("as Zoë 😀"), "status: " + await text(zoe, "#status"));
    check((await text(zoe, "#members")).includes("Zoë 😀 (you)"), "members: " + await text(zoe, "#members"));

    // The same name in the same room is refused, with the reason in the page.
    const other = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await other.goto(base);
    await join(other, "Zoë 😀", "ui");
    await other.locator("#notice").waitFor({ state: "visible" });
    const refusal = await text(other, "#notice");
    check(refusal.includes("already called “Zoë 😀”"), "refusal: " + refusal);
    check((await text(other, "#status")).includes("name is taken"), "status: " + await text(other, "#status"));
    await shot(other, "chat-name-taken.png");
    // Another name gets in.
    await join(other, "Bob", "ui");
    await joined(other, "ui");
    check(!(await other.locator("#notice").isVisible()), "the refusal stays after joining");
    await zoe.waitForFunction(() => document.querySelector("#members").textContent.includes("Bob"));

    // A long word wraps inside the log instead of widening the page.
    const word = "supercalifragilistic".repeat(40);
    await other.fill("#text", word);
    await other.click("#say button");
    await zoe.waitForFunction((word) => document.querySelector("#log").textContent.includes(word), word);
    const overflow = await zoe.evaluate(() => {
      const log = document.querySelector("#log");
      return { log: log.scrollWidth - log.clientWidth, page: document.documentElement.scrollWidth - innerWidth };
    });
    check(overflow.log <= 1 && overflow.page <= 1, "a long word overflows: " + JSON.stringify(overflow));

    // A message over the limit is refused in the page, before sending, with the reason;
    // the socket stays open and the text stays in the box.
    await zoe.fill("#text", "é".repeat(40000));
    await zoe.locator("#notice").waitFor({ state: "visible" });
    await zoe.click("#say button");
    const tooBig = await text(zoe, "#notice");
    check(tooBig.includes("at most 64.0 KiB per message"), "size notice: " + tooBig);
    check(await zoe.evaluate(() => window.chatSocket.readyState) === 1, "the socket closed");
    check((await zoe.inputValue("#text")).length === 40000, "the text was lost");
    await shot(zoe, "chat-too-big.png");
    await zoe.fill("#text", "");
    await zoe.waitForFunction(() => document.querySelector("#notice").hidden);

    // Direct messages: click Bob in the member list, write, and only Bob gets it.
    await zoe.click("#members button:has-text('Bob')");
    check(await zoe.inputValue("#to") !== "", "clicking a member does not choose them");
    await zoe.fill("#text", "psst, Bob");
    await zoe.click("#say button");
    await other.waitForFunction(() => document.querySelector("#log").textContent.includes("(direct) Zoë 😀: psst, Bob"));
    check((await text(zoe, "#log")).includes("(direct to Bob) Zoë 😀: psst, Bob"), "the sender does not see the DM");
    await zoe.selectOption("#to", "");

    // The server closes the socket (a frame over the limit, sent around the page's check):
    // the page says so, reconnects and joins the room again.
    await other.evaluate(() => window.chatSocket.send("x".repeat(70000)));
    await other.waitForFunction(() => document.querySelector("#log").textContent.includes("connection lost (code 1009"));
    await shot(other, "chat-connection-lost.png");
    await joined(other, "ui");
    await other.waitForFunction(() => document.querySelector("#log").textContent.includes("reconnected; rejoined ui"));
    check((await text(other, "#members")).includes("Zoë 😀"), "members after the rejoin: " + await text(other, "#members"));
    await zoe.fill("#text", "still there?");
    await zoe.click("#say button");
    await other.waitForFunction(() => document.querySelector("#log").textContent.includes("Zoë 😀: still there?"));
    await shot(zoe, "chat-desktop.png");

    // Phone width: nothing wider than the screen, the input row usable.
    const phone = await browser.newPage({ viewport: { width: 360, height: 740 } });
    await phone.goto(base);
    await join(phone, "Carol", "ui");
    await joined(phone, "ui");
    await phone.fill("#text", word);
    await phone.click("#say button");
    await phone.waitForFunction((word) => document.querySelector("#log").textContent.includes(word), word);
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 360, "the page is " + width + " px wide at 360");
    const send = await box(phone, "#say button");
    check(send.x + send.width <= 360, "Send is off screen at x=" + send.x);
    await shot(phone, "chat-phone.png");

    check(errors.length === 0, "page errors: " + errors.join("; "));
    console.log("chat page as a user: all checks passed");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

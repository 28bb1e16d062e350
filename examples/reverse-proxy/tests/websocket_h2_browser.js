// Headless Chromium (playwright-core) opens a WebSocket through the proxy over HTTP/2
// (RFC 8441): the page comes over TLS with ALPN h2, the WebSocket reuses that connection
// with an extended CONNECT, and the echo server behind the proxy speaks HTTP/1.1 only.
// Usage: node websocket_h2_browser.js https://127.0.0.1:PORT   (NODE_PATH, CHROMIUM_PATH set)
"use strict";
const { chromium } = require("playwright-core");

(async () => {
  const base = process.argv[2];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH,
    headless: true,
    // The proxy's development certificate is made at start and trusted by nobody.
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--ignore-certificate-errors"],
  });
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    const handshakes = [];
    cdp.on("Network.webSocketHandshakeResponseReceived", (event) => handshakes.push(event.response.status));
    // The echo server answers a plain GET with 426; what matters is the connection.
    await page.goto(base + "/");
    const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    if (protocol !== "h2") throw new Error("the page came over " + protocol);
    const echoed = await page.evaluate((url) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const got = [];
      ws.onopen = () => { ws.send("hello over h2"); ws.send("x".repeat(70000)); };
      ws.onmessage = (event) => {
        got.push(event.data);
        if (got.length === 2) { ws.close(1000); resolve(got.map((m) => m.length > 20 ? m.length : m)); }
      };
      ws.onerror = () => reject(new Error("WebSocket error after " + JSON.stringify(got)));
      setTimeout(() => reject(new Error("timed out after " + JSON.stringify(got))), 10000);
    }), base.replace("https:", "wss:") + "/echo");
    if (echoed[0] !== "hello over h2" || echoed[1] !== 70000) throw new Error("echoed " + JSON.stringify(echoed));
    // Chromium reports the handshake's status: 200 over HTTP/2 (an extended CONNECT),
    // where a WebSocket over its own HTTP/1.1 connection reports 101.
    if (handshakes.length !== 1 || handshakes[0] !== 200) throw new Error("handshake statuses " + JSON.stringify(handshakes));
    console.log("browser: all checks passed (a WebSocket over HTTP/2, handshake status 200)");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

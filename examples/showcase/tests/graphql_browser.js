// Headless Chromium (playwright-core) on the showcase's GraphQL page as a user meets it
// (issue 22, item 4): the schema explorer lists the types from introspection with their
// descriptions and follows a type link; a subscription sent over POST is refused with a
// GraphQL error that names the WebSocket (400 with application/graphql-response+json); the
// page runs the subscription itself over the WebSocket (graphql-transport-ws) and shows each
// book as it is added, from its own form and from another client; the way back leads to
// the landing page; no content-policy violation.
// Usage: node graphql_browser.js http://127.0.0.1:PORT SCREENSHOT.png...
//        (one path per screenshot, named by its last part; NODE_PATH and CHROMIUM_PATH set)
"use strict";
const path = require("path");
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
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const problems = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(String(error)));

    const response = await page.goto(base + "/graphql/");
    check(response.status() === 200, "/graphql/ answered " + response.status());
    const title = await page.title();
    check(title.startsWith("GraphQL") && !title.includes("graphql-core"), "title: " + title);
    check(await page.isVisible("header a#back"), "no way back to the showcase");

    // The explorer: types from introspection, root types first, with descriptions.
    await page.waitForSelector("#types li.type");
    const types = await page.locator("#types .type-link").allTextContents();
    for (const name of ["Query", "Mutation", "Subscription", "Book", "Author", "String", "ID"]) {
      check(types.includes(name), "the explorer does not list " + name + ": " + types.join(", "));
    }
    check(types.indexOf("Query") === 0, "Query is not first: " + types.join(", "));
    check(!types.some((name) => name.startsWith("__")), "introspection types shown by default");
    check((await page.textContent("#type-name")) === "Query", "the Query type is not shown first");
    const detail = await page.textContent("#type-detail");
    for (const text of ["books: [Book!]!", "Every book (cacheable for 30 s", "book(id: ID!): Book", "One book by id."]) {
      check(detail.includes(text), "the Query type lacks " + JSON.stringify(text) + ": " + detail);
    }
    await shot(page, "graphql-explorer-query.png");
    // A type name in a field is a link to that type.
    await page.click("#type-detail dt.field:has-text('books') .type-link[data-type=Book]");
    check((await page.textContent("#type-name")) === "Book", "the Book link did not open Book");
    const book = await page.textContent("#type-detail");
    check(book.includes("author: Author!") && book.includes("title: String!"), "Book fields: " + book);
    await page.click("#type-detail .type-link[data-type=Author]");
    check((await page.textContent("#type-name")) === "Author", "the Author link did not open Author");
    await page.click("#types .type-link[data-type=Subscription]");
    check((await page.textContent("#type-detail")).includes("Every book added from now on."), "no subscription description");
    await page.check("#show-meta");
    check((await page.locator("#types .type-link[data-type=__Type]").count()) === 1, "introspection types do not show on request");
    await page.uncheck("#show-meta");
    await shot(page, "graphql-explorer-subscription.png");

    // Over POST a subscription is a request error that says where to go.
    const refused = await page.evaluate(async () => {
      const response = await fetch("graphql", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
        body: JSON.stringify({ query: "subscription { bookAdded { title } }" }),
      });
      return { status: response.status, body: await response.json() };
    });
    check(refused.status === 400, "a subscription over POST answered " + refused.status);
    check(!("data" in refused.body), "a subscription over POST has data: " + JSON.stringify(refused.body));
    check(/WebSocket/.test(refused.body.errors[0].message) && /graphql-transport-ws/.test(refused.body.errors[0].message),
      "the error does not name the WebSocket: " + refused.body.errors[0].message);

    // The page runs the subscription itself over the WebSocket.
    await page.click("[data-example=subscribe]");
    check((await page.inputValue("#query")).startsWith("subscription"), "the example is not a subscription");
    await page.click("#send");
    await page.waitForSelector("#live-status[data-state=subscribed]", { timeout: 10000 });
    check((await page.locator("#events li").count()) === 0, "events before any book was added");
    // A book added from the page's form arrives as an event.
    await page.fill("#add-form input[name=title]", "The Lathe of Heaven");
    await page.selectOption("#add-form select", "1");
    await page.fill("#add-form input[name=year]", "1971");
    await page.click("#add-form button");
    await page.waitForSelector("#events li .title:has-text('The Lathe of Heaven')", { timeout: 10000 });
    const first = await page.textContent("#events li");
    check(first.includes("by Ursula K. Le Guin") && first.includes("(1971)"), "event: " + first);
    // ... and so does one added by another client (a POST from outside the page).
    const added = await fetch(base + "/graphql/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
      body: JSON.stringify({ query: 'mutation { addBook(title: "Children of Dune", authorId: "2", year: 1976) { id } }' }),
    });
    check(added.status === 200, "the outside mutation answered " + added.status);
    await page.waitForSelector("#events li .title:has-text('Children of Dune')", { timeout: 10000 });
    check((await page.locator("#events li").count()) === 2, "events: " + (await page.locator("#events li").allTextContents()).join(" | "));
    check((await page.textContent("#events li")).includes("Children of Dune"), "the newest event is not first");
    await page.locator("#events").scrollIntoViewIfNeeded();
    await shot(page, "graphql-subscription-live.png", true);
    await page.click("#stop");
    await page.waitForSelector("#live-status[data-state=stopped]");

    // A query still goes over POST, and its answer is shown.
    await page.click("[data-example=books]");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector("#result").textContent.includes("Children of Dune"));
    check((await page.textContent("#status")).startsWith("200 application/graphql-response+json"), "status: " + (await page.textContent("#status")));

    // The way back.
    await Promise.all([page.waitForNavigation(), page.click("#back")]);
    check(page.url() === base + "/", "the way back leads to " + page.url());

    const csp = problems.filter((text) => /Content Security Policy|Refused to/.test(text));
    check(csp.length === 0, "content-policy violations: " + csp.join(" | "));
    // The refused POST above is logged as a failed load (400); anything else is a fault.
    const faults = problems.filter((text) => !text.startsWith("Failed to load resource: the server responded with a status of 400"));
    check(faults.length === 0, "errors on the page: " + faults.join(" | "));
    console.log("graphql page in Chromium: all checks passed");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

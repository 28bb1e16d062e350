// The npm graphql-ws client against the example: subscribes to bookAdded, adds two books
// over HTTP, receives both events, unsubscribes; runs a query over the socket too. Prints
// one JSON line with what it saw. Needs NODE_PATH with graphql-ws and ws.
const { createClient } = require("graphql-ws");
const WebSocket = require("ws");

const origin = process.argv[2]; // http://127.0.0.1:PORT
const client = createClient({ url: origin.replace("http", "ws") + "/graphql", webSocketImpl: WebSocket, retryAttempts: 0 });

function subscribeTwo() {
  return new Promise((resolve, reject) => {
    const events = [];
    let completed = false;
    const unsubscribe = client.subscribe(
      { query: "subscription { bookAdded { title author { name } } }" },
      {
        next: (value) => {
          events.push(value);
          if (events.length === 2) {
            unsubscribe();
            resolve({ events, completed });
          }
        },
        error: reject,
        complete: () => { completed = true; },
      },
    );
    // Give the server time to open the source stream, then add two books.
    setTimeout(async () => {
      for (const title of ["Dune", "Children of Dune"]) {
        await fetch(origin + "/graphql", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ query: `mutation { addBook(title: "${title}", authorId: "2") { id } }` }),
        });
      }
    }, 300);
  });
}

function queryOnce() {
  return new Promise((resolve, reject) => {
    const results = [];
    client.subscribe(
      { query: "{ authors { name } }" },
      { next: (v) => results.push(v), error: reject, complete: () => resolve(results) },
    );
  });
}

(async () => {
  const sub = await subscribeTwo();
  const query = await queryOnce();
  await client.dispose();
  console.log(JSON.stringify({ events: sub.events, query }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

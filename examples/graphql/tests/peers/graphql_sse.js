// The npm graphql-sse client against the example, in the mode given by argv[3] ("single" or
// "distinct"): a @defer/@stream query, a query, a mutation, a subscription that receives two
// events and is then unsubscribed, and a subscription cancelled before any event. Every HTTP
// request the client makes is recorded (method, URL, status). Prints one JSON line with what
// it saw. Needs NODE_PATH with graphql-sse.
const { createClient } = require("graphql-sse");

const origin = process.argv[2]; // http://127.0.0.1:PORT
const single = process.argv[3] === "single";
const url = origin + "/graphql";

const requests = [];
let token = null;
async function recordingFetch(input, init = {}) {
  const headers = init.headers || {};
  if (headers["x-graphql-event-stream-token"]) token = headers["x-graphql-event-stream-token"];
  const res = await fetch(input, init);
  requests.push({ method: init.method || "GET", url: String(input).slice(origin.length), status: res.status });
  return res;
}

const client = createClient({
  url,
  singleConnection: single,
  // One stream for every operation in the single-connection mode.
  lazy: !single,
  retryAttempts: 0,
  fetchFn: recordingFetch,
  onNonLazyError: (e) => {
    console.error("non-lazy error", e);
    process.exit(1);
  },
});

async function all(request) {
  const results = [];
  for await (const result of client.iterate(request)) results.push(result);
  return results;
}

function addBook(title) {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: `mutation { addBook(title: "${title}", authorId: "2") { id } }` }),
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Subscribes, adds two books once the source is open, takes both events, unsubscribes.
function subscribeTwo() {
  return new Promise((resolve, reject) => {
    const events = [];
    const unsubscribe = client.subscribe(
      { query: "subscription { bookAdded { title author { name } } }" },
      {
        next: (value) => {
          events.push(value);
          if (events.length === 2) {
            unsubscribe();
            resolve(events);
          }
        },
        error: reject,
        complete: () => {},
      },
    );
    setTimeout(async () => {
      for (const title of ["Dune", "Children of Dune"]) await addBook(title);
    }, 300);
  });
}

// Subscribes and cancels before any event: no event, no error; then a book added later
// reaches nobody.
async function cancelEarly() {
  const seen = [];
  let failed = null;
  const unsubscribe = client.subscribe(
    { query: "subscription { bookAdded { title } }" },
    { next: (v) => seen.push(v), error: (e) => (failed = String(e)), complete: () => {} },
  );
  await sleep(300);
  unsubscribe();
  await sleep(200);
  await addBook("After the cancel");
  await sleep(200);
  return { seen, failed };
}

(async () => {
  const incremental = await all({
    query: '{ books @stream(initialCount: 1) { title } book(id: "1") { id ... @defer(label: "more") { year author { name } } } }',
  });
  const query = await all({ query: "{ authors { name } }" });
  const mutation = await all({ query: 'mutation { addBook(title: "Heretics of Dune", authorId: "2") { title year } }' });
  const events = await subscribeTwo();
  await sleep(200);
  const cancelled = await cancelEarly();
  // The server forgot the cancelled operations: stopping one again is 404.
  let stopAgain = null;
  const deletes = requests.filter((r) => r.method === "DELETE");
  if (single && deletes.length > 0) {
    const res = await fetch(url + deletes[0].url.slice("/graphql".length), {
      method: "DELETE",
      headers: { "x-graphql-event-stream-token": token },
    });
    stopAgain = res.status;
  }
  client.dispose();
  console.log(JSON.stringify({ incremental, query, mutation, events, cancelled, requests, stopAgain }));
  // The disposed client's stream closes with its fetch aborted; do not wait for timers.
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

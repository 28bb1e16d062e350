// A JavaScript client reading the example's `multipart/mixed` incremental delivery with the
// npm `meros` multipart reader (what urql and Relay network layers use), in both formats:
// graphql-js 17's (`incrementalSpec=v0.2`: pending ids, `subPath`, `completed`) and the
// 2022-08-24 one (`deferSpec=20220824`: paths and labels). Each part is applied to the
// result as a client does; prints one JSON line with the parts and the assembled results.
// Needs NODE_PATH with meros.
const http = require("node:http");
const { meros } = require("meros/node");

const origin = process.argv[2]; // http://127.0.0.1:PORT
const query =
  '{ books @stream(initialCount: 1) { title } book(id: "1") { id ... @defer(label: "more") { year author { name } } } }';

function post(accept) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ query });
    const req = http.request(
      origin + "/graphql",
      {
        method: "POST",
        headers: { "content-type": "application/json", accept, "content-length": Buffer.byteLength(body) },
      },
      resolve,
    );
    req.on("error", reject);
    req.end(body);
  });
}

function at(data, path) {
  let cur = data;
  for (const key of path) cur = cur[key];
  return cur;
}

function deepMerge(target, source) {
  for (const [key, value] of Object.entries(source)) {
    if (value && typeof value === "object" && !Array.isArray(value) && target[key] && typeof target[key] === "object") {
      deepMerge(target[key], value);
    } else {
      target[key] = value;
    }
  }
}

// graphql-js 17: `pending` gives an id a path; `incremental` entries go there (+ subPath).
function applyCurrent(parts) {
  const data = structuredClone(parts[0].data);
  const errors = [...(parts[0].errors || [])];
  const pending = new Map();
  for (const part of parts) {
    for (const p of part.pending || []) pending.set(p.id, p.path);
    for (const inc of part.incremental || []) {
      const path = pending.get(inc.id).concat(inc.subPath || []);
      if (inc.items) at(data, path).push(...inc.items);
      else deepMerge(at(data, path), inc.data);
      errors.push(...(inc.errors || []));
    }
    for (const c of part.completed || []) {
      errors.push(...(c.errors || []));
      pending.delete(c.id);
    }
  }
  return { data, errors, open: pending.size };
}

// 2022-08-24: each entry carries its path (for items, the index of the first item).
function applyLegacy(parts) {
  const data = structuredClone(parts[0].data);
  const errors = [...(parts[0].errors || [])];
  for (const part of parts) {
    for (const inc of part.incremental || []) {
      if (inc.items) {
        const list = at(data, inc.path.slice(0, -1));
        list.splice(inc.path[inc.path.length - 1], inc.items.length, ...inc.items);
      } else if (inc.data) {
        deepMerge(at(data, inc.path), inc.data);
      }
      errors.push(...(inc.errors || []));
    }
  }
  return { data, errors };
}

async function read(accept) {
  const response = await post(accept);
  const parts = await meros(response);
  const bodies = [];
  if (typeof parts[Symbol.asyncIterator] !== "function") throw new Error("not multipart");
  for await (const part of parts) {
    if (!part.json) throw new Error("a part that is not JSON: " + part.body);
    bodies.push(part.body);
  }
  return { status: response.statusCode, contentType: response.headers["content-type"], parts: bodies };
}

(async () => {
  const current = await read("multipart/mixed;incrementalSpec=v0.2, application/json");
  current.result = applyCurrent(current.parts);
  const legacy = await read("multipart/mixed;deferSpec=20220824, application/json");
  legacy.result = applyLegacy(legacy.parts);
  console.log(JSON.stringify({ current, legacy }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

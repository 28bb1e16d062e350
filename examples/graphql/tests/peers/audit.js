// Runs the graphql-http server audits against the URL given as the first argument and
// prints one JSON line: {"total": N, "ok": N, "results": [{id, name, status, reason}]}.
// Needs NODE_PATH pointing at a node_modules with graphql-http and graphql.
const { serverAudits } = require("graphql-http");

(async () => {
  const audits = serverAudits({ url: process.argv[2], fetchFn: fetch });
  const results = [];
  for (const audit of audits) {
    let result;
    try {
      result = await audit.fn();
    } catch (e) {
      result = { status: "error", reason: String(e) };
    }
    results.push({ id: audit.id, name: audit.name, status: result.status, reason: result.reason || null });
  }
  const ok = results.filter((r) => r.status === "ok").length;
  console.log(JSON.stringify({ total: results.length, ok, results }));
})();

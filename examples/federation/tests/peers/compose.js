// @apollo/composition's composeServices (what rover and @apollo/gateway use) run on the
// subgraph SDLs in a JSON file: [{"name": ..., "url": ..., "sdl": ...}]. Prints
// {"errors": [{code, message}], "hints": [{code, message}], "supergraphSdl": ...} as JSON.
//
// Run with: NODE_PATH=<node_modules with @apollo/composition, graphql>
//           node compose.js subgraphs.json
const fs = require('fs');
const { parse } = require('graphql');
const { composeServices } = require('@apollo/composition');

{
  const input = fs.readFileSync(process.argv[2], 'utf8');
  const subgraphs = JSON.parse(input).map(({ name, url, sdl }) => ({
    name,
    url,
    typeDefs: parse(sdl),
  }));
  const result = composeServices(subgraphs);
  const describe = (e) => ({
    code: (e.extensions && e.extensions.code) || (e.definition && e.definition.code) || null,
    message: e.message,
  });
  console.log(
    JSON.stringify({
      errors: (result.errors || []).map(describe),
      hints: (result.hints || []).map(describe),
      supergraphSdl: result.supergraphSdl || null,
    }),
  );
}

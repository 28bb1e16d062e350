// @apollo/gateway composing our two subgraphs (products and reviews, served by the
// federation example at ORIGIN) and one subgraph of @apollo/subgraph's own (inventory,
// served here) with IntrospectAndCompose, then answering queries that span them. Prints
// {"results": [...], "plans": [...]} as JSON: each query's response and its query plan.
//
// Run with: NODE_PATH=<node_modules with @apollo/gateway, @apollo/subgraph, graphql>
//           node gateway.js http://127.0.0.1:PORT
const http = require('http');
const crypto = require('crypto');
const { parse, execute, validate } = require('graphql');
const { ApolloGateway, IntrospectAndCompose } = require('@apollo/gateway');
const { buildSubgraphSchema } = require('@apollo/subgraph');
const { prettyFormatQueryPlan } = require('@apollo/query-planner');

const origin = process.argv[2];

// The inventory subgraph: Product by its compound key, with a field that @requires the
// product's weight (owned by our products subgraph).
const inventory = buildSubgraphSchema({
  typeDefs: parse(`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3",
                        import: ["@key", "@external", "@requires"])
    type Query { stock: [Product!]! }
    type Product @key(fields: "sku package") {
      sku: String!
      package: String!
      inStock: Boolean!
      weight: Int! @external
      shippingEstimate: Int! @requires(fields: "weight")
    }
  `),
  resolvers: {
    Query: { stock: () => [{ sku: 'C-2', package: 'bag' }] },
    Product: {
      __resolveReference: (ref) => ({ ...ref }),
      inStock: (p) => p.sku !== 'C-2',
      shippingEstimate: (p) => p.weight * 3,
    },
  },
});

function serveInventory() {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      const { query, variables, operationName } = JSON.parse(body);
      const document = parse(query);
      const errors = validate(inventory, document);
      const result = errors.length
        ? { errors }
        : await execute({ schema: inventory, document, variableValues: variables, operationName });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(result));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function main() {
  const inventoryServer = await serveInventory();
  const plans = [];
  const gateway = new ApolloGateway({
    supergraphSdl: new IntrospectAndCompose({
      subgraphs: [
        { name: 'products', url: `${origin}/products/graphql` },
        { name: 'reviews', url: `${origin}/reviews/graphql` },
        { name: 'inventory', url: `http://127.0.0.1:${inventoryServer.address().port}/graphql` },
      ],
    }),
    experimental_didResolveQueryPlan: ({ queryPlan }) => plans.push(prettyFormatQueryPlan(queryPlan)),
  });
  const { schema, executor } = await gateway.load();
  const run = async (query) => {
    const document = parse(query);
    const errors = validate(schema, document);
    if (errors.length) return { errors: errors.map((e) => e.message) };
    return executor({
      request: { query, variables: {}, http: { headers: new Map() } },
      document,
      source: query,
      queryHash: crypto.createHash('sha256').update(query).digest('hex'),
      operationName: null,
      operation: document.definitions[0],
      schema,
      context: {},
      logger: console,
      metrics: {},
      cache: undefined,
    });
  };
  const results = [];
  for (const query of [
    '{ topProducts(first: 2) { upc name reviews { body stars } reviewScore inStock shippingEstimate } }',
    '{ latestReviews { body product { name price } } }',
    '{ stock { sku name reviews { stars } } }',
  ]) {
    const { data, errors } = await run(query);
    results.push(errors ? { data, errors } : { data });
  }
  console.log(JSON.stringify({ results, plans }));
  await gateway.stop();
  inventoryServer.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

//! Two Apollo Federation v2 subgraphs served with graphql-core: `products` (the catalogue:
//! `Product` by `upc`, or by its compound key `sku package`) and `reviews` (reviews of
//! products, and `Product.reviews` and `Product.reviewScore` added to the type `products`
//! owns; `reviewScore` `@requires` the product's `price`). A gateway composes them from
//! their `_service { sdl }` and fetches entities across them with `_entities`; `products`
//! resolves all the products of one `_entities` call with one batch call.
//!
//! [`App`] answers GraphQL over HTTP at `/products/graphql` and `/reviews/graphql`, and
//! `ok` at `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use graphql_core::{Context, Federation, FieldError, Resolver, Schema, read_http_request};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use serde_json::{Value, json};

/// The largest request body read (bytes).
const MAX_BODY: usize = 1 << 20;

/// The products subgraph's SDL, as `_service { sdl }` returns it.
pub const PRODUCTS_SDL: &str = r#"extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable"])

type Query {
  "The products, best sellers first."
  topProducts(first: Int = 5): [Product!]!
  product(upc: String!): Product
}

type Product @key(fields: "upc") @key(fields: "sku package") {
  upc: String!
  sku: String!
  package: String!
  name: String!
  "Price in cents."
  price: Int!
  "Weight in grams."
  weight: Int!
}
"#;

/// The reviews subgraph's SDL, as `_service { sdl }` returns it.
pub const REVIEWS_SDL: &str = r#"extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.3",
        import: ["@key", "@external", "@requires"])

type Query {
  latestReviews: [Review!]!
}

type Review @key(fields: "id") {
  id: ID!
  body: String!
  stars: Int!
  product: Product!
}

type Product @key(fields: "upc") {
  upc: String!
  price: Int! @external
  reviews: [Review!]!
  "Stars per euro: the sum of the stars, times 100, over the price in cents."
  reviewScore: Int! @requires(fields: "price")
}
"#;

/// (upc, sku, package, name, price, weight)
const PRODUCTS: &[(&str, &str, &str, &str, i64, i64)] = &[
    ("1", "T-1", "box", "Table", 100, 10),
    ("2", "C-2", "bag", "Chair", 50, 5),
    ("3", "L-3", "box", "Lamp", 25, 2),
];

/// (id, upc, body, stars)
const REVIEWS: &[(&str, &str, &str, i64)] = &[
    ("r1", "1", "Sturdy", 5),
    ("r2", "1", "Wobbly", 2),
    ("r3", "2", "Comfy", 4),
];

fn product(p: &(&str, &str, &str, &str, i64, i64)) -> Value {
    let (upc, sku, package, name, price, weight) = *p;
    json!({"upc": upc, "sku": sku, "package": package, "name": name, "price": price, "weight": weight})
}

fn review(r: &(&str, &str, &str, i64)) -> Value {
    let (id, upc, body, stars) = *r;
    // `product` is a reference the gateway completes from the products subgraph.
    json!({"id": id, "body": body, "stars": stars, "product": {"__typename": "Product", "upc": upc}})
}

/// The products subgraph.
pub fn products_schema() -> graphql_core::Result<Schema> {
    Schema::build(PRODUCTS_SDL)
        .federation(Federation::new().max_representations(100))
        .resolver(
            "Query",
            "topProducts",
            Resolver::sync(|_, _, args| {
                let first = args.get("first").and_then(Value::as_u64).unwrap_or(5);
                let first = usize::try_from(first).unwrap_or(usize::MAX);
                Ok(PRODUCTS.iter().take(first).map(product).collect())
            }),
        )
        .resolver(
            "Query",
            "product",
            Resolver::sync(|_, _, args| {
                let upc = args.get("upc").and_then(Value::as_str);
                Ok(PRODUCTS
                    .iter()
                    .find(|p| Some(p.0) == upc)
                    .map_or(Value::Null, product))
            }),
        )
        // Every product representation of a request in one call (where a real subgraph
        // makes one database query), each found by `upc`, or by `sku` and `package`
        // together (the compound key); one result per representation, in order.
        .entity_batch_resolver(
            "Product",
            Resolver::sync_list(|_, representations, _| {
                let representations = representations.as_array().map_or(&[][..], Vec::as_slice);
                Ok(representations
                    .iter()
                    .map(|representation| {
                        let found = PRODUCTS.iter().find(|p| match representation.get("upc") {
                            Some(upc) => upc == p.0,
                            None => {
                                representation["sku"] == p.1 && representation["package"] == p.2
                            }
                        });
                        Ok(found.map_or(Value::Null, product))
                    })
                    .collect())
            }),
        )
        .finish()
}

/// The reviews subgraph.
pub fn reviews_schema() -> graphql_core::Result<Schema> {
    let of =
        |upc: &Value| -> Vec<Value> { REVIEWS.iter().filter(|r| upc == r.1).map(review).collect() };
    Schema::build(REVIEWS_SDL)
        .federation(Federation::new().max_representations(100))
        .resolver(
            "Query",
            "latestReviews",
            Resolver::sync(|_, _, _| Ok(REVIEWS.iter().rev().map(review).collect())),
        )
        .entity_resolver(
            "Review",
            Resolver::sync(|_, representation, _| {
                Ok(REVIEWS
                    .iter()
                    .find(|r| representation["id"] == r.0)
                    .map_or(Value::Null, review))
            }),
        )
        // No reference resolver for `Product`: the representation (`upc`, and `price`
        // when `reviewScore` is asked for) is the entity its fields resolve from.
        .resolver(
            "Product",
            "reviews",
            Resolver::sync(move |_, product, _| Ok(Value::Array(of(&product["upc"])))),
        )
        .resolver(
            "Product",
            "reviewScore",
            Resolver::sync(move |_, product, _| {
                let price = product["price"]
                    .as_i64()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| FieldError::new("reviewScore needs the product's price"))?;
                let stars: i64 = of(&product["upc"])
                    .iter()
                    .filter_map(|r| r["stars"].as_i64())
                    .sum();
                Ok(json!(stars * 100 / price))
            }),
        )
        .finish()
}

/// The two subgraphs on one server.
#[derive(Debug)]
pub struct App {
    products: Schema,
    reviews: Schema,
}

impl App {
    /// Builds both subgraphs' schemas.
    pub fn new() -> graphql_core::Result<Self> {
        Ok(App {
            products: products_schema()?,
            reviews: reviews_schema()?,
        })
    }

    async fn graphql(&self, schema: &Schema, request: Request<serve::Body>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = Limited::new(body, MAX_BODY + 1).collect().await else {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large\n");
        };
        let response = match read_http_request(&parts, &bytes.to_bytes(), MAX_BODY) {
            Ok((request, format)) => {
                let response = schema.execute(&request, &Context::default()).await;
                graphql_core::write_http_response(&response, format)
            }
            Err(rejection) => rejection.into_response(),
        };
        response.map(Bytes::from)
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl serve::App for App {
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move {
            let response = match (request.method(), request.uri().path()) {
                (_, "/products/graphql") => self.graphql(&self.products, request).await,
                (_, "/reviews/graphql") => self.graphql(&self.reviews, request).await,
                (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            };
            response.map(serve::full)
        })
    }
}

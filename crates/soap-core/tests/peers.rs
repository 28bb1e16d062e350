//! soap-core's client against real servers: spyne 2.14 (PyPI) and node `soap` (npm). Each
//! server runs on 127.0.0.1 on a free port; our client reads the WSDL the server serves into
//! a `Description`, builds a `Client` for the SOAP 1.1 and the SOAP 1.2 port, calls the
//! operations and reads the peer's faults. The HTTP exchange is a minimal HTTP/1.0 client
//! over `std::net` (soap-core does no IO itself).
//!
//! Needs `PEER_PYTHON` (a Python with `.ci/requirements.txt`) for spyne and
//! `PEER_NODE_MODULES` (node_modules from `.ci/package.json`) for node `soap`; each test
//! skips with a message when its variable is unset and fails when `CI=true`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use soap_core::{Client, Description, Error, FaultCode, SoapVersion, Style, XmlLimits};

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");

fn peer_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{name} must be set under CI"
            );
            println!("skipped: {name} is not set");
            None
        }
    }
}

/// A peer server process; killed on drop.
struct Peer {
    child: Child,
    base: String,
}

impl Peer {
    fn start(mut command: Command) -> Peer {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("peer did not start: {line:?}"))
            .to_owned();
        Peer { child, base }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` over HTTP/1.0 (the peer closes the connection after the response).
fn send(request: &http::Request<Bytes>) -> http::Response<Vec<u8>> {
    let uri = request.uri();
    let authority = uri.authority().unwrap().as_str();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{} {} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        request.method(),
        uri.path_and_query().map_or("/", |p| p.as_str()),
        request.body().len()
    );
    for (name, value) in request.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(request.body()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut response = http::Response::builder().status(status);
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        response = response.header(name.trim(), value.trim());
    }
    response.body(raw[split + 4..].to_vec()).unwrap()
}

fn get(url: &str) -> Vec<u8> {
    let request = http::Request::get(url).body(Bytes::new()).unwrap();
    let response = send(&request);
    assert_eq!(response.status(), 200, "GET {url}");
    response.into_body()
}

// --- spyne ------------------------------------------------------------------------------

#[derive(Serialize)]
struct SpyneGetStock {
    sku: String,
}
#[derive(Debug, Deserialize)]
struct SpyneStock {
    sku: String,
    available: i64,
}
#[derive(Debug, Deserialize)]
struct SpyneGetStockResponse {
    #[serde(rename = "getStockResult")]
    result: SpyneStock,
}
#[derive(Serialize)]
struct IntegerArray {
    integer: Vec<i64>,
}
#[derive(Serialize)]
struct SpyneRestock {
    sku: String,
    quantities: IntegerArray,
}
#[derive(Debug, Deserialize)]
struct SpyneRestockResponse {
    #[serde(rename = "restockResult")]
    total: i64,
}
#[derive(Debug, Deserialize)]
struct UnknownSku {
    sku: String,
}

#[test]
fn our_client_calls_spyne_over_both_versions() {
    let Some(python) = peer_env("PEER_PYTHON") else {
        return;
    };
    let mut command = Command::new(python);
    command.arg(format!("{PEERS}/spyne_server.py"));
    let peer = Peer::start(command);

    for (path, version) in [("soap11", SoapVersion::V11), ("soap12", SoapVersion::V12)] {
        let wsdl = get(&format!("{}/{path}?wsdl", peer.base));
        let description = Description::parse(&wsdl, &XmlLimits::default()).unwrap();
        assert_eq!(
            description.target_namespace.as_deref(),
            Some("urn:peer:inventory")
        );
        let port = description.port("Inventory", "Inventory").unwrap();
        assert_eq!(port.version, version, "{path}");
        assert_eq!(port.address, format!("{}/{path}", peer.base));
        let op = port.operation("getStock").unwrap();
        assert_eq!(op.action.as_deref(), Some("getStock"));
        assert_eq!(op.style, Style::Document);
        assert!(op.literal && op.input_qualified);
        assert_eq!(op.input.as_ref().unwrap().name, "getStock");
        assert_eq!(
            op.output.as_ref().unwrap().namespace.as_deref(),
            Some("urn:peer:inventory")
        );
        let client = Client::from_port(port).unwrap();

        let request = client
            .request("getStock", &SpyneGetStock { sku: "A-1".into() })
            .unwrap();
        let stock: SpyneGetStockResponse = client.response(&send(&request)).unwrap();
        assert_eq!(stock.result.sku, "A-1");
        assert_eq!(stock.result.available, 25);

        let request = client
            .request(
                "restock",
                &SpyneRestock {
                    sku: "A-1".into(),
                    quantities: IntegerArray {
                        integer: vec![2, 5, 11],
                    },
                },
            )
            .unwrap();
        let restocked: SpyneRestockResponse = client.response(&send(&request)).unwrap();
        assert_eq!(restocked.total, 18, "{path}");

        let request = client
            .request("getStock", &SpyneGetStock { sku: "nope".into() })
            .unwrap();
        let response = send(&request);
        // spyne answers every fault with 500, also a SOAP 1.2 Sender fault (which
        // SOAP 1.2 part 2 section 7.5.1.2 gives 400); our client reads the fault either way.
        assert_eq!(response.status(), 500);
        let Err(Error::Fault(fault)) = client.response::<SpyneGetStockResponse, _>(&response)
        else {
            panic!("{path}: expected a fault");
        };
        assert_eq!(fault.code, FaultCode::Sender, "{path}");
        assert_eq!(fault.reason, "unknown SKU nope");
        assert!(
            fault
                .subcodes
                .iter()
                .any(|(_, name)| name == "UnknownSku" || name == "Client.UnknownSku"),
            "{path}: {:?}",
            fault.subcodes
        );
        let detail: UnknownSku = fault.detail("unknownSku").unwrap().unwrap();
        assert_eq!(detail.sku, "nope");

        // An operation the WSDL does not have is refused before anything is sent.
        assert!(matches!(
            client.request("dropTable", &SpyneGetStock { sku: "x".into() }),
            Err(Error::UnknownOperation { .. })
        ));
    }
}

// --- node soap --------------------------------------------------------------------------

#[derive(Serialize)]
struct NodeGetStock {
    sku: String,
}
#[derive(Debug, Deserialize)]
struct NodeGetStockResponse {
    sku: String,
    available: u32,
}
#[derive(Serialize)]
struct NodeRestock {
    sku: String,
    quantity: Vec<u32>,
}
#[derive(Debug, Deserialize)]
struct NodeRestockResponse {
    total: u32,
}

#[test]
fn our_client_calls_a_node_soap_server_over_both_versions() {
    let Some(modules) = peer_env("PEER_NODE_MODULES") else {
        return;
    };
    let mut command = Command::new("node");
    command
        .arg(format!("{PEERS}/node_soap_server.js"))
        .env("NODE_PATH", modules);
    let peer = Peer::start(command);

    let wsdl = get(&format!("{}/soap11?wsdl", peer.base));
    let description = Description::parse(&wsdl, &XmlLimits::default()).unwrap();
    for (port_name, version, status) in [
        ("InventorySoap11", SoapVersion::V11, 500),
        ("InventorySoap12", SoapVersion::V12, 400),
    ] {
        let port = description.port("Inventory", port_name).unwrap();
        assert_eq!(port.version, version);
        let op = port.operation("getStock").unwrap();
        assert_eq!(
            op.action.as_deref(),
            Some("urn:peer:node-inventory#getStock")
        );
        assert_eq!(op.faults.len(), 1);
        assert_eq!(op.faults[0].0, "unknownSku");
        let client = Client::from_port(port).unwrap();

        let request = client
            .request("getStock", &NodeGetStock { sku: "B-2".into() })
            .unwrap();
        if version == SoapVersion::V12 {
            let ct = request.headers()["content-type"].to_str().unwrap();
            assert!(
                ct.contains("action=\"urn:peer:node-inventory#getStock\""),
                "{ct}"
            );
        } else {
            assert_eq!(
                request.headers()["soapaction"],
                "\"urn:peer:node-inventory#getStock\""
            );
        }
        let stock: NodeGetStockResponse = client.response(&send(&request)).unwrap();
        assert_eq!((stock.sku.as_str(), stock.available), ("B-2", 3));

        let request = client
            .request(
                "restock",
                &NodeRestock {
                    sku: "B-2".into(),
                    quantity: vec![4, 6],
                },
            )
            .unwrap();
        let restocked: NodeRestockResponse = client.response(&send(&request)).unwrap();
        assert_eq!(restocked.total, 10, "{port_name}");

        let request = client
            .request("getStock", &NodeGetStock { sku: "zz".into() })
            .unwrap();
        let response = send(&request);
        assert_eq!(response.status(), status, "{port_name}");
        let Err(Error::Fault(fault)) = client.response::<NodeGetStockResponse, _>(&response) else {
            panic!("{port_name}: expected a fault");
        };
        assert_eq!(fault.code, FaultCode::Sender, "{port_name}");
        assert_eq!(fault.reason, "unknown SKU zz");
        if version == SoapVersion::V12 {
            assert_eq!(
                fault.subcodes,
                vec![(
                    "urn:peer:node-inventory".to_owned(),
                    "UnknownSku".to_owned()
                )]
            );
        }
        let detail: UnknownSku = fault.detail("unknownSku").unwrap().unwrap();
        assert_eq!(detail.sku, "zz");
    }
}

//! WSDL reading on the client side: any bytes through `Description::parse` with the default
//! limits; every port read must give a client, and every operation a request or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soap_core::{Client, Description, XmlLimits};

#[derive(serde::Serialize)]
struct Probe {
    value: u32,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(description) = Description::parse(data, &XmlLimits::default()) {
        for port in description.ports() {
            if let Ok(client) = Client::from_port(port) {
                for op in &port.operations {
                    let _ = client.request(&op.name, &Probe { value: 1 });
                }
            }
        }
    }
});

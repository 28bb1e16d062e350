//! Query-string extraction into a typed struct (repeated keys, numbers, options).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rest_core::{QueryLimits, query};

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Filter {
    tag: Vec<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    flag: Option<bool>,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = query::<Filter>(Some(text), &QueryLimits::default());
    }
});

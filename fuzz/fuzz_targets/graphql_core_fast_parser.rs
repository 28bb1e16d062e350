//! Differential: wherever graphql-core's fast reader accepts a document, graphql-parser
//! must accept it too and build the same AST, positions included.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(disagreement) = graphql_core::fuzzing::fast_reader_agrees(text) {
        panic!("{disagreement}");
    }
});

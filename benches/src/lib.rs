//! Benchmarks live in `benches/*.rs`; this library only anchors the package.
//! See `README.md` beside this file for the method.

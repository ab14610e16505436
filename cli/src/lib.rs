//! The parts of `dpkeys` that other programs (fuzz targets, property tests)
//! call directly: the parsers for its date and duration arguments. The
//! command-line tool itself is the `dpkeys` binary.

pub mod args;

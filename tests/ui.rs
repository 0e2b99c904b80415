//! Compile-time behaviour of `#[websocket]`: the accepted forms compile, and each mistake is an
//! error on the offending tokens (`tests/ui/fail/<mistake>.rs` and its `.stderr`).
//!
//! After changing a message, rerun with `TRYBUILD=overwrite` and review the diff of the `.stderr`
//! files.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

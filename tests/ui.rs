//! Compile-time behaviour of `#[websocket]`: the accepted forms compile, and each mistake is an
//! error on the offending tokens (`tests/ui/fail/<mistake>.rs` and its `.stderr`).
//!
//! After changing a message, rerun with `TRYBUILD=overwrite` and review the diff of the `.stderr`
//! files.
//!
//! The snapshots are those of the default features (`cargo test --workspace` in scripts/test).
//! `tests/ui/fail/features/` uses an item of an optional feature without it, so each case there
//! runs only while its feature is off (trybuild builds the cases with the features of this test).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
    #[cfg(not(feature = "json"))]
    cases.compile_fail("tests/ui/fail/features/missing_feature_json.rs");
    #[cfg(not(feature = "test"))]
    cases.compile_fail("tests/ui/fail/features/missing_feature_test.rs");
}

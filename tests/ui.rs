//! Compile-time behaviour of the attribute macros: shapes that must compile
//! (`tests/ui/pass`) and one misuse per file with its exact error
//! (`tests/ui/fail`). Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

//! Subcommands of the `credtrail` binary that live outside `main.rs`.

pub mod eval;
pub mod generate;
pub mod rules;
pub mod rules_test;
pub mod service;

//! Command-line glue for subcommands that live in their own files.

pub mod rules_test;

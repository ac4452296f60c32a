//! Shared test support: a temporary project with a plan, fixtures and the built binary.
#![allow(dead_code)]

pub mod fake_api;

//! run tests

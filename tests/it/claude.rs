//! claude tests

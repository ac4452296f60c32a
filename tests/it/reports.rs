//! reports tests

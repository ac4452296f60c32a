//! plan_errors tests

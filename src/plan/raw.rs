//! The plan file as serde reads it, before validation.

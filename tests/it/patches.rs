//! patches tests

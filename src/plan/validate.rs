//! Checks on a parsed plan: names, references, cycles, templates.

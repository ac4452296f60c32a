//! A loopback server speaking the Anthropic Messages API, for driving the real Claude Code CLI.

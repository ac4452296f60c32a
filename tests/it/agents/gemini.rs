//! `kind: gemini`: the real Gemini CLI through borg-batch against the loopback Gemini API.

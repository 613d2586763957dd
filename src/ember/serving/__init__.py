"""Serving: what happens between a parsed request and its answer, whatever the wire format. `pipeline`
opens a conversation, runs the mode and stores the exchange; `chat` serves one chat request end to end
(mode, scopes, limits, admission, intake, pipeline)."""

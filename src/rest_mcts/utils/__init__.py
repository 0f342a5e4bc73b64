"""Small shared helpers: `io` (atomic file writers, whole JSONL lines), `hashing` (stable
config fingerprints for cache keys), `seeding` (one call seeds python, numpy and torch),
`secrets` (API keys kept out of logs and errors), `errors` (`ConfigError`, the one
user-facing error) and `console` (what a run prints).
"""

"""Small shared helpers: `io` (atomic file writers, whole JSONL lines), `hashing` (stable
config fingerprints for cache keys), `seeding` (one call seeds python, numpy and torch),
`secrets` (API keys kept out of logs and errors), `errors` (`ConfigError`, the one
user-facing error), `console` (what a run prints) and `swept` (which keys a multirun
sweeps, and a job's values of them).
"""

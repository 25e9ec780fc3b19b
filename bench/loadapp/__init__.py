"""A bench-only Django app (never installed in production): the two ceilings that
`bench/load_submit.py` measures beside the real submission endpoint, on the same deployment —
an authenticated DRF GET returning a constant, and an authenticated DRF POST that validates a
small body and inserts one row. Loaded through `loadapp.settings` with `bench/` on the path."""

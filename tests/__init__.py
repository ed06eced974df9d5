"""segfair's test suite (a package, so that `tests.*` imports find it before any third-party
`tests` package a dependency installs, e.g. ppi-python's)."""

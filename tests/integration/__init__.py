"""Integration tests (a package so that their module names, e.g. test_preflight, may repeat unit tests')."""

"""The benchmark harness (run on demand, never part of the pytest suite). See README.md here."""

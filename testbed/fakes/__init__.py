"""Local fake servers for the outside HTTP APIs (CoMagic, BigQuery, ...), started by the tests."""

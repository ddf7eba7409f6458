"""The kit's testbed: launchers of a private Asterisk 22, memcached, MariaDB, FTP/FTPS and SFTP
servers, baresip phones, headless Chromium, and fake cloud APIs (testbed/fakes). Used by tests/,
scripts/demo.sh and benchmarks/; never shipped in the wheel (setup.cfg lists its packages)."""

"""The admin's overview: `asterisk-kit status`, the /status page and the e-mail alerts."""

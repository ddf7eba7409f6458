"""asterisk-kit: integrations for an Asterisk / FreePBX PBX."""
__version__ = "0.1.0"

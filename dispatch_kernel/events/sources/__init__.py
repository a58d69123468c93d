"""Event sources: drivers that turn something happening elsewhere into CloudEvents."""

"""Statistics on tables: pure functions of pandas objects, no file names."""

"""Helpers every layer may use: input checks that name what is wrong (checks), files written
whole or not at all (files), and the console's routing of log messages (console)."""

"""Puts the project root on sys.path so tests import the package without installing it."""

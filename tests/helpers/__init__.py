"""Helpers shared by several test modules (instead of test modules importing each other)."""

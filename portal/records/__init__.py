"""Signed PDF records: render, seal, store, verify."""

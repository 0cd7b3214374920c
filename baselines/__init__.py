"""Baseline adapters: each produces one audio file per test clip behind one interface."""

"""Bundled YAML configs (scoring defaults, ablation suites), read through the package."""

"""Artifact storage: `s3://bucket/key` addresses, backends chosen by URI scheme."""

"""The S3 gateway: S3's REST API on Sabio's port, over the artifact store (see routing.py)."""

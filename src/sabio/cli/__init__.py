"""The `sabio` command line."""

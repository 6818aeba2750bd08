"""The operators' command line: `ca-admin`."""

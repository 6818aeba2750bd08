"""X.509 and name rules that know nothing of the rest of the project: the bottom layer."""

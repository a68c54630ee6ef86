"""One module per `rrhf` command; each only parses options and calls library code."""

"""The run machinery every stage shares: stage configuration (declared in config, resolved in resolve), the
journal and its shares, stage runs, launch groups, output locking, logging and the backend registry. It imports
only the contract below it."""

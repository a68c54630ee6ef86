"""The ground floor, the artifact contract: records, input formats and readers, artifacts and their meta,
metrics lines, ids and the errors that name a file and line. It imports no other project package."""

__version__ = "0.1.0"

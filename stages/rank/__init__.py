"""`rrhf rank`: scored candidates into ranked listwise records or preference pairs."""

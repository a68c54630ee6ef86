"""The ground floor: the artifact contract (records, input formats, readers, meta, metrics) and the run
machinery every stage shares (config, journal, stage runs, launch, logging). It imports no other project
package, so every other package may import it."""

__version__ = "0.1.0"

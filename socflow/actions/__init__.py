"""Response actions: the catalog, the proposals, the analyst sub-decisions and the connectors."""

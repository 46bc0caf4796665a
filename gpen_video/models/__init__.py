"""GPEN networks and the registry of downloadable weights (GPEN and the face detectors)."""

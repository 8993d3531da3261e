"""Local `evaluate` module folder (the metric script is the file named like the folder)."""

"""The ``aimass`` command line: runs services and talks to the platform as a hospital or an operator would."""

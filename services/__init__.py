"""The six AI Mass services (one package each) and the ``aimass`` command line. No service imports another."""

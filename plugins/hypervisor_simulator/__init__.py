"""The simulator plugin: simulated hosts and storage, and the ``configureSimulator`` command."""

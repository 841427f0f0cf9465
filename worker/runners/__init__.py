"""How a worker runs one trial: the built-in trainer, a user's function or a user's command,
behind one interface (:class:`~.base.Runner`), with the divergence rule and the stops
around all three (:class:`~.base.Watch`)."""

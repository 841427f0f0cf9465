"""Search strategies: spaces, designers and the stage-to-stage narrowing."""

"""Search strategies: spaces, designers, the stage-to-stage narrowing, and the policy
that keeps designers between claims and derives each stage from the one before."""

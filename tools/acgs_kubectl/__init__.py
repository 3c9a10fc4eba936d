"""`kubectl acgs`: a kubectl plugin for the acgs.io API (trees, rollout commands, retrain, watch)."""

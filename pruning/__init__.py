"""mpcert: pruning package."""

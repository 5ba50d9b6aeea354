"""mpcert: verification package."""

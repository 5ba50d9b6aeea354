"""mpcert: verification.models."""

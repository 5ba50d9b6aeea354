"""mpcert: verification.bridge."""

"""mpcert: verification.theorems."""

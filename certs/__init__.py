"""mpcert: certs package."""

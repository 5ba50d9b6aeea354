"""mpcert: figures package."""

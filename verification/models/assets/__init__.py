"""Package data of mpcert: the embedded default model (weights and card), see verification.models.default_model."""

"""debias: audit face detectors for bias across skin tone, pose and gender, and retrain them with
debiased sampling (DB-VAE)."""
__version__ = "0.1.0"

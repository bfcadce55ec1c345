"""From numbers to labels: LightGBM models, spatial evaluation, trust, model cards."""

"""Inference: the predictor, its feature extraction, the CAM methods and the chest X-ray gate."""

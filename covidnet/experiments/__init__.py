"""Experiments that train and then measure (above both training and assessment)."""

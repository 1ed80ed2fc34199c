"""Labelled scan lists, their splits and their sources: what training and assessment both read."""

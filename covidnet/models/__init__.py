"""The backbone registry, checkpoint metadata, and verified checkpoint loading."""

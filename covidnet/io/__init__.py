"""Reading scans (any common image format or DICOM) and the one preprocessing path to a model's input."""

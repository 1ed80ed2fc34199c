"""Training: labelled data, patient-level splits, the training loop, calibration and fitting the gate."""

"""Assessment: metrics, evaluation reports, shortcut checks and the model card document."""

"""Running a trained network on user images: ``cnlrn infer`` and anything else that needs it."""

"""DR drills: each one runs an operator scenario end to end and reports figures and a verdict."""

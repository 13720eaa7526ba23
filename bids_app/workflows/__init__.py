"""The participant and group levels: nipype graphs and orchestration around the science."""

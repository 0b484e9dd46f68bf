"""Dataset statistics and plots of a run, as one self-contained HTML file."""

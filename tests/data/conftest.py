"""The reference generators need libraries outside the project (librosa); run by hand only."""

collect_ignore_glob = ['reference/generate_*.py']

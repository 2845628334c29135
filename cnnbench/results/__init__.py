"""What runs leave behind, read back: run directories (of any cnnbench version), leaderboards and their plots."""

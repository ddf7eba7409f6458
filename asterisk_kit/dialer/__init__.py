"""Autodialer ("avtoobzvon"): phone list and weekly schedule, paced call files, results from Asterisk."""

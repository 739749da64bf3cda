"""Checks for the chapters' exercises: run them in a notebook to test your answer.

Taught in: every chapter's "Exercises" section.
"""

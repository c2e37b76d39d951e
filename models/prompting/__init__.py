"""Prompting models: captioners, the salience scorer, prompt text cleaning, audio taggers.
Inference only: their training halves live in models/training/.
"""

"""Training: one trainer per model kind, and FoleyWorld (the procedural audio-visual world) as a
data source. Nothing on the generation or prompting path imports this package.
"""

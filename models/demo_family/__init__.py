"""The demo model family: a log-mel codec inverted with Griffin-Lim, cheap video features and a
small text encoder; the shipped FoleyWorld bundle is made of these.
"""

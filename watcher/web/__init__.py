"""The web page for people: incidents, their timelines, PIP recommendations."""

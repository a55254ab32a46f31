"""The book: mdBook sources (src/), its build (build.py), preprocessor (preprocess.py) and figures (figures.py)."""

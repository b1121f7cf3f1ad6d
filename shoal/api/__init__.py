"""The user-facing API: remote functions, actors, refs, runtime calls."""

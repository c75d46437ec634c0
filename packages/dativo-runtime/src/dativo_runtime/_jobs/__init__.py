"""The job file: its pydantic model, its loading and interpolation of ``${VAR}`` references."""

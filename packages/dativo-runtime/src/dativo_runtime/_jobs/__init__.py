"""The job file: its pydantic model, its loading and interpolation of ``${VAR}`` references.

``_model`` (:class:`JobConfig`, :func:`load_job`, :func:`parse_job`), ``_sections`` (one
model a section of the file), ``_reading`` (strict YAML), ``_problems`` (the rules across
keys and the messages that name the field and the fix).
"""

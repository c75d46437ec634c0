"""The version of dativo-http."""

HTTP_VERSION = "0.1.0"

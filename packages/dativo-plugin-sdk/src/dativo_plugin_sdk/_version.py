"""The SDK's own version: the single source for the package metadata too."""

PLUGIN_SDK_VERSION = "1.1.0"

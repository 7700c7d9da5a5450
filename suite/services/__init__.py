"""Services onboarded by teams: the manifest (``spec``) and the registry of services."""

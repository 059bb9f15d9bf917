"""The demo scenario: four real hospitals publishing their heart-disease records (hospital side, not a service)."""

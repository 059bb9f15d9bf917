"""report: readable reports and FHIR RiskAssessments from fused results, on ``reports`` and over HTTP."""

"""Renderers of a ``ReportView``: HTML for people, PDF for print and archive, FHIR R4 for EHRs."""

"""reports.html."""

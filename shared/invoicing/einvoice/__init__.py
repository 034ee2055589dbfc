"""E-invoices: EN 16931 in UBL 2.1 with the Peppol BIS Billing 3.0 customization (`ubl`), and their
validation by the official rules: the UBL 2.1 XSD and the CEN's EN 16931 schematron (`validate`)."""

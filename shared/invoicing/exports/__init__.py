"""Files for the MSP's books: Xero's and QuickBooks Online's invoice imports. Pure: documents in,
CSV bytes out (one file per currency)."""
